"""Few-shot demonstrations of the IMHI tasks (`lm_eval --num_fewshot K`, `imhi-bench eval
--num-fewshot K`).

The pool is `imhi_bench.benchmark.data.demonstration_pool` (the set's train split, else val,
else its expert examples; never a test post).  lm-eval reaches it through the task YAML:

    fewshot_split: test
    fewshot_config:
      sampler: !function utils.DemoSampler
      process_docs: !function utils.demonstration_docs

`demonstration_docs` turns the test split into the pool (the test docs only say which set,
format and data dir), and naming the test split is what makes lm-eval hand each sample's doc
to the sampler (`fewshot_context` passes `eval_doc` only then), so that `DemoSampler` draws
each sample's demonstrations from (seed, set, doc_id) alone: the same whatever the batch
size, order, `--limit` or process, class-balanced where the pool allows.  lm-eval writes
each as query + target_delimiter + gold response, fewshot_delimiter ("\\n\\n") between.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from lm_eval.api.samplers import ContextSampler

from imhi_bench.core.errors import ImhiError
from imhi_bench.tasks.names import DATA_DIR_METADATA

SAMPLER = "class-balanced, drawn per sample from (seed, set, doc_id)"


def demonstration_docs(test_docs) -> list[dict]:
    """fewshot_config.process_docs: the demonstration pool of the task whose test docs these
    are, as docs lm-eval formats like test docs (`query`, `gold`)."""
    from imhi_bench.benchmark.data import demonstration_pool

    if len(test_docs) == 0:
        return []
    first = test_docs[0]
    pool = demonstration_pool(first["set"], first["format"], first.get(DATA_DIR_METADATA) or None)
    return [{"set": pool.set, "format": pool.fmt, "source": pool.source, "row": i,
             "query": query, "gold": gold} for i, (query, gold) in enumerate(pool.rows)]


def balanced_draw(labels: Sequence[str | None], k: int, rng: random.Random) -> list[int]:
    """Indices of min(k, len(labels)) rows: the classes take turns (in an order `rng`
    shuffles), one row each, skipping classes with no rows left, so every class present is
    drawn evenly where the pool allows; rows within a class and the final order are drawn
    by `rng` too."""
    by_class: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(str(label), []).append(i)
    classes = sorted(by_class)
    rng.shuffle(classes)
    take = dict.fromkeys(classes, 0)
    left = min(k, len(labels))
    while left:
        for c in classes:
            if left and take[c] < len(by_class[c]):
                take[c] += 1
                left -= 1
    drawn = [i for c in classes for i in rng.sample(by_class[c], take[c])]
    rng.shuffle(drawn)
    return drawn


def sample_rng(seed: int | None, set_name: str, doc_id: int) -> random.Random:
    """The generator of one sample's draw: a function of (seed, set, doc_id) only."""
    return random.Random(f"imhi-fewshot/{seed}/{set_name}/{doc_id}")


class DemoSampler(ContextSampler):
    """lm-eval sampler (fewshot_config.sampler) drawing each sample's demonstrations from
    its own generator (`sample_rng`), class-balanced by the gold responses' labels
    (`balanced_draw`).  A pool smaller than K gives all of it (`imhi-bench eval` says so in
    a note); an empty pool gives none."""

    def __init__(self, df=None, *, rnd: int | None = None, **kwargs) -> None:
        super().__init__(df, rnd=rnd, **kwargs)
        self.seed = rnd
        self._labels: list[str | None] | None = None

    def set_rnd(self, rnd: int | None):
        self.seed = rnd
        return super().set_rnd(rnd)

    def replace_df(self, df):
        self._labels = None
        return super().replace_df(df)

    def labels(self) -> list[str | None]:
        """The class of every pool row, read from its gold response (None if unreadable)."""
        if self._labels is None:
            from imhi_bench.scoring.labels.gold import gold_label

            def read(doc: dict) -> str | None:
                try:
                    return gold_label(doc["set"], doc["gold"])
                except ImhiError:
                    return None

            self._labels = [read(d) for d in self.fewshot_docs()]
        return self._labels

    def sample(self, n: int, eval_doc=None, df=None, **kwargs) -> list[dict]:
        if df:
            self.replace_df(df)
        if n <= 0 or not self.df:
            return []
        if eval_doc is None:
            raise ImhiError("DemoSampler draws per sample: the task's fewshot_split must be its "
                            "test split (lm-eval passes the sample's doc only then)")
        rng = sample_rng(self.seed, eval_doc["set"], int(eval_doc["doc_id"]))
        docs = self.fewshot_docs()
        return [docs[i] for i in balanced_draw(self.labels(), n, rng)]


def fewshot_plan(tasks: Sequence[str], k: int, seed: int | None,
                 data_dir) -> tuple[dict, list[str]]:
    """(provenance, notes) of a run's few-shot setting: K, the seed, the sampler, and per
    set the pool (source split, files with sha256, size, rows left out as test posts); a
    note for each set whose pool holds fewer than K rows."""
    from imhi_bench.benchmark.data import demonstration_pool, resolve_data_dir
    from imhi_bench.core.fileio import sha256_file
    from imhi_bench.tasks.names import parse_task

    prov: dict = {"num_fewshot": k, "seed": seed if k else None,
                  "sampler": SAMPLER if k else None, "pools": None, "notes": []}
    if not k:
        return prov, []
    root = resolve_data_dir(data_dir)
    pools: dict[str, dict] = {}
    notes: list[str] = []
    for task in tasks:
        s, fmt = parse_task(task)
        pool = demonstration_pool(s.name, fmt, root)
        pools[s.name] = {
            "task": task,
            "source": pool.source,
            "files": {f: sha256_file(root / f) for f in pool.files if (root / f).is_file()},
            "size": len(pool.rows),
            "left_out": pool.dropped,
        }
        if len(pool.rows) < k:
            n = len(pool.rows)
            why = (f"its {pool.source} pool holds only {n} outside the test sets"
                   if pool.source else "it has no train, val or expert example outside the test "
                   "sets")
            notes.append(f"few-shot {task}: {n} demonstration{'' if n == 1 else 's'} per "
                         f"sample instead of {k}: {why}")
    prov["pools"] = pools
    prov["notes"] = notes
    return prov, notes
