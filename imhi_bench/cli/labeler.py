"""`imhi-bench labeler train | eval | agree`: the classifier labeler, and how the rules read."""

from __future__ import annotations

import argparse

from imhi_bench.cli.options import add_data_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "labeler",
        help="labeler train | eval | agree: the per-set classifiers that read labels from "
        "text, trained, scored and checked against the rules (agree without DIR: the rules "
        "alone)",
        description="The paper's classifier labeler (MentalBERT-style), trainable here.")
    lsub = p.add_subparsers(dest="labeler_command", metavar="ACTION", required=True)

    t = lsub.add_parser(
        "train",
        help="fine-tune one sequence classifier per set on the released gold explanations",
        description=(
            "Fine-tune one sequence classifier per set on the gold responses of the released "
            "train files, each used with and without its leading label sentence; pick the "
            "epoch on half of val; report held-out accuracy on the other half with the label "
            "sentence removed (sets with only a val file: val split 80/10/10, said in the "
            "report).  Each classifier is saved as a Hugging Face folder OUT/<SET> with its "
            "label map; OUT/labeler_report.json holds the report.  Use OUT with --labeler."
        ),
    )
    t.add_argument("--encoder", required=True, metavar="PATH_OR_ID",
                   help="encoder to fine-tune, e.g. mental/mental-bert-base-uncased or a local "
                   "folder")
    t.add_argument("--out", required=True, metavar="DIR", help="where to save the classifiers")
    t.add_argument("--sets", metavar="A,B",
                   help="comma list of sets (default: every set with released train data: "
                   "DR, dreaddit, Irf, MultiWD, SAD)")
    t.add_argument("--epochs", type=int, default=3, metavar="N", help="epochs (default 3)")
    t.add_argument("--max-length", type=int, default=256, metavar="N",
                   help="tokens per text, train and predict (default 256)")
    t.add_argument("--batch-size", type=int, default=16, metavar="N", help="default 16")
    t.add_argument("--lr", type=float, default=5e-5, help="AdamW learning rate (default 5e-5)")
    t.add_argument("--max-train", type=int, metavar="N",
                   help="use at most N train rows per set (seeded subsample; default all)")
    t.add_argument("--freeze-embeddings", action="store_true",
                   help="do not train the word embeddings (about 2x faster on CPU)")
    t.add_argument("--seed", type=int, default=0, help="default 0")
    t.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    add_data_dir(t, fetch="train")
    t.set_defaults(func=run_train)

    e = lsub.add_parser(
        "eval",
        help="held-out accuracy of a labeler folder (ours or the paper's classifiers)",
        description=(
            "Accuracy of the classifiers in DIR on the held-out split `labeler train` uses, "
            "with and without the label sentence.  The paper's released classifiers may have "
            "seen these rows in training."
        ),
    )
    _labeler_dir_args(e)
    e.set_defaults(func=run_eval)

    a = lsub.add_parser(
        "agree",
        help="how the rules (and a labeler DIR, if given) read label-stripped explanations "
        "and DR_annotation answers",
        description=(
            "Per set: its test gold explanations with the label sentence removed, the same "
            "after an option list that chooses nothing (every reader should read them as the "
            "plain ones), and, for DR, the free-form answers of "
            "human_evaluation/DR_annotation.  Without DIR: percent the rules read as the class "
            "each text states, on every set whose test file is present.  With DIR, on the sets "
            "it covers: "
            "percent each reader gets right (the rules, the classifier alone, explicit "
            "answers first as --labeler reads), percent the classifier and explicit-first "
            "agree with the rules, and how many labels the rules' explicit answers decided."
        ),
    )
    _labeler_dir_args(a, optional=True)
    a.set_defaults(func=run_agree)


def _labeler_dir_args(p: argparse.ArgumentParser, optional: bool = False) -> None:
    """What `labeler eval` and `labeler agree` both take: a labeler folder and its sets
    (`agree` without a folder measures the rules alone)."""
    p.add_argument("labeler", metavar="DIR", nargs="?" if optional else None,
                   help="folder with one classifier folder per set"
                   + (" (default: none, the rules alone)" if optional else ""))
    p.add_argument("--sets", metavar="A,B",
                   help="comma list of sets (default: those DIR covers; without DIR, every set "
                   "whose test file is present)")
    p.add_argument("--json", metavar="OUT", help="also write the results JSON here")
    add_data_dir(p)


def _table(reports: dict) -> str:
    from imhi_bench.scoring.report import table

    def pct(x):
        return "" if x is None else f"{x:.2f}"

    rows = [[name, r.get("train_examples", ""), r["test"], pct(r["test_accuracy"]),
             pct(r["test_accuracy_with_label"]), r["split"]] for name, r in reports.items()]
    return table(["set", "train ex.", "held-out", "acc (no label sent.)", "acc (full)",
                  "split"], rows)


def run_train(args: argparse.Namespace) -> int:
    from imhi_bench.benchmark.sets import NON_CLINICAL_NOTICE, parse_set_list
    from imhi_bench.scoring.labeler.train import TrainOptions, train_labeler

    sets = [s.name for s in parse_set_list(args.sets)] if args.sets else None
    opts = TrainOptions(epochs=args.epochs, max_length=args.max_length,
                        batch_size=args.batch_size, lr=args.lr, max_train=args.max_train,
                        freeze_embeddings=args.freeze_embeddings, seed=args.seed,
                        device=args.device)
    result = train_labeler(args.encoder, args.out, sets, opts, data_dir=args.data_dir)
    print()
    print(_table(result["sets"]))
    print(f"\nwrote {args.out} (use it with --labeler {args.out})")
    print(NON_CLINICAL_NOTICE)
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from imhi_bench.benchmark.sets import NON_CLINICAL_NOTICE, parse_set_list
    from imhi_bench.core.fileio import atomic_write_json
    from imhi_bench.scoring.labeler.load import load_labeler
    from imhi_bench.scoring.labeler.train import evaluate_labeler

    labeler = load_labeler(args.labeler)
    sets = [s.name for s in parse_set_list(args.sets)] if args.sets else None
    reports = evaluate_labeler(labeler, sets, args.data_dir)
    print(f"labeler {labeler.name}")
    print(_table(reports))
    if args.json:
        atomic_write_json(args.json, {"labeler": labeler.name, "sets": reports,
                                      "notice": NON_CLINICAL_NOTICE})
        print(f"\nwrote {args.json}")
    print(NON_CLINICAL_NOTICE)
    return 0


def run_agree(args: argparse.Namespace) -> int:
    from imhi_bench.benchmark.sets import NON_CLINICAL_NOTICE, parse_set_list
    from imhi_bench.core.fileio import atomic_write_json
    from imhi_bench.scoring.labeler.agreement import agreement
    from imhi_bench.scoring.labeler.load import load_labeler
    from imhi_bench.scoring.report import table

    labeler = load_labeler(args.labeler) if args.labeler else None
    sets = [s.name for s in parse_set_list(args.sets)] if args.sets else None
    rows = agreement(labeler, sets, args.data_dir)
    if labeler is None:
        print("rules alone (no labeler DIR given)")
        print(table(["texts", "n", "rules"],
                    [[name, r["n"], f"{r['rules']:.2f}"] for name, r in rows.items()]))
    else:
        print(f"labeler {labeler.name}")
        print(table(
            ["texts", "n", "rules", "classifier", "explicit first", "classifier = rules",
             "explicit first = rules", "rules decided"],
            [[name, r["n"], f"{r['rules']:.2f}", f"{r['classifier']:.2f}",
              f"{r['explicit_first']:.2f}", f"{r['classifier_vs_rules']:.2f}",
              f"{r['explicit_first_vs_rules']:.2f}", r["rules_decided"]]
             for name, r in rows.items()]))
    print("(percent of texts read as the class they state" + (
        ")" if labeler is None else "; '= rules': percent agreeing with the rules)"))
    if args.json:
        atomic_write_json(args.json, {"labeler": labeler.name if labeler else None,
                                      "texts": rows, "notice": NON_CLINICAL_NOTICE})
        print(f"\nwrote {args.json}")
    print(NON_CLINICAL_NOTICE)
    return 0
