"""Explanation quality: the generation scored against the gold response.

`table` lists the metrics (names, JSON keys, store columns, titles, scales, directions)
and names the function of each; one module per metric computes it (`bart_score` with
`bart_model`, `bertscore`, `rouge`, and `consistency`, which the classifier labeler
produces); `config` holds what `--quality`/`--labeler` asked for and scores a set with it.
"""
