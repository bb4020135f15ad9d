"""The classifier labeler: per-set sequence classifiers that read a class from free text.

`load` loads a labeler folder (ours or the paper's released classifiers) and predicts with
it; `fit` fine-tunes one sequence classifier on plain (text, class) rows; `train` trains and
evaluates the IMHI labeler on the released train data with it; `explicit` is how scoring
reads with it (an explicit answer the rules find decides, the classifier reads the rest);
`agreement` measures the classifier, alone and explicit-first, against the rules.
"""
