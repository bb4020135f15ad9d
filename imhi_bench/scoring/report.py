"""Plain-text tables for the terminal.  Every report ends with the non-clinical notice."""

from __future__ import annotations

from collections.abc import Sequence

from imhi_bench.benchmark.sets import NON_CLINICAL_NOTICE
from imhi_bench.scoring.coverage import partial_line
from imhi_bench.scoring.quality.table import METRICS

# Optional per-set keys the quality step adds to the score JSON, with their column titles.
_OPTIONAL = tuple((m.key, m.label) for m in METRICS)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(x: object) -> str:
    if isinstance(x, float):
        return f"{x:.2f}" if abs(x) >= 0.01 or x == 0 else f"{x:.4f}"
    return "" if x is None else str(x)


def _ci(ci: Sequence[float] | None) -> str:
    if not ci:  # bootstrap disabled
        return ""
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def labeler_cell(m: dict) -> str:
    """The labeler column: its name and, for a classifier, how many labels (and consistency
    readings) the rules' explicit answers decided, since those were not the classifier's."""
    name = m.get("labeler", "")
    if "labels_by_rules" not in m:
        return name
    counts = f"rules decided {m['labels_by_rules']} explicit answers"
    if "consistency_by_rules" in m:
        counts += f", {m['consistency_by_rules']} in explanations"
    return f"{name} ({counts})"


def score_table(report: dict) -> str:
    """Per-set and mean metrics of a score JSON, whether the run is partial, then the
    notice."""
    sets = report["sets"]
    protocol = (report.get("provenance") or {}).get("protocol") or {}
    extra = [(k, bart_title(protocol) if k == "bart_score" else t) for k, t in _OPTIONAL
             if any(k in v for v in sets.values())]
    headers = ["set", "n", "wF1", "95% CI", "acc", "macroF1", "unparseable"]
    headers += [t for _, t in extra] + ["labeler"]
    rows = []
    for name, m in sets.items():
        rows.append(
            [name, m["n"], _fmt(m["weighted_f1"]), _ci(m.get("weighted_f1_ci")),
             _fmt(m["accuracy"]), _fmt(m["macro_f1"]), m["unparseable"]]
            + [_fmt(m.get(k)) for k, _ in extra]
            + [labeler_cell(m)]
        )
    mean = report.get("mean") or {}
    if mean and len(sets) > 1:
        rows.append(
            [f"mean ({mean['sets']} sets)", mean["n"], _fmt(mean["weighted_f1"]),
             _ci(mean.get("weighted_f1_ci")), _fmt(mean["accuracy"]), _fmt(mean["macro_f1"]),
             mean["unparseable"]]
            + [_fmt(mean.get(k)) for k, _ in extra] + [""]
        )
    return (table(headers, rows) + "\n\n" + partial_line(report) + protocol_line(protocol)
            + NON_CLINICAL_NOTICE)


def bart_title(protocol: dict) -> str:
    """BART-score's column title names its variant: the model, "+ParaBank" when a
    checkpoint (the paper's bart_score.pth) is loaded on it."""
    variant = str(protocol.get("bart_score") or "")
    if not variant:
        return "BARTScore"
    model = variant.split(" + ", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return f"BARTScore ({model}{' +ParaBank' if ' + checkpoint' in variant else ''})"


def protocol_line(protocol: dict) -> str:
    """How the numbers above were made, in two lines (empty for a report without one)."""
    if not protocol.get("id"):
        return ""
    return (f"Protocol {protocol['id']} ({protocol.get('name', '?')}): labels read by "
            f"{protocol.get('label_reader')}; {protocol.get('metrics')}.\n"
            "Numbers compare only under the same protocol (`imhi-bench protocol show`).\n\n")


_COMPARED = (("weighted_f1", "weighted F1"), ("accuracy", "accuracy"), ("macro_f1", "macro F1"))


def _p(p: float | None) -> str:
    return "" if p is None else f"{p:.4f}"


def comparison_table(result: dict) -> str:
    """A paired comparison (`scoring.compare.compare_runs`) as one table per metric, B - A
    in percentage points, then what was compared and the notice."""
    blocks = []
    mean = result["mean"]
    for key, title in _COMPARED:
        rows = [[name, m["n"], _fmt(m[key]["a"]), _fmt(m[key]["b"]), f"{m[key]['diff']:+.2f}",
                 _ci(m[key]["ci"]), _p(m[key]["p_bootstrap"]), _p(m[key]["p_permutation"])]
                for name, m in result["sets"].items()]
        if len(result["sets"]) > 1:
            rows.append([f"mean ({len(mean['sets'])} sets)", "", _fmt(mean[key]["a"]),
                         _fmt(mean[key]["b"]), f"{mean[key]['diff']:+.2f}",
                         _ci(mean[key]["ci"]), _p(mean[key]["p_bootstrap"]),
                         _p(mean[key]["p_permutation"])])
        blocks.append(f"{title} (percent; B - A on the shared samples)\n" + table(
            ["set", "n", "A", "B", "B - A", "95% CI", "p bootstrap", "p permutation"], rows))
    notes = [f"Paired: both runs resampled with the same indices ({result['bootstrap']} "
             f"bootstrap draws, seed {result['seed']}); permutation test: "
             f"{result['permutations']} shuffles of the two runs' predictions per sample."]
    partial = [f"{name} ({m['only_a']} only in A, {m['only_b']} only in B)"
               for name, m in result["sets"].items() if m["only_a"] or m["only_b"]]
    if partial:
        notes.append("Samples only one run scored are left out: " + ", ".join(partial) + ".")
    for side in ("a", "b"):
        if result[f"only_in_{side}"]:
            notes.append(f"Sets only {side.upper()} scored (not compared): "
                         + ", ".join(result[f"only_in_{side}"]) + ".")
    return "\n\n".join(blocks) + "\n\n" + "\n".join(notes) + "\n\n" + NON_CLINICAL_NOTICE
