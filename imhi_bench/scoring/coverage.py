"""Whether a run scored every sample of every set it claims (`run_coverage`): complete,
partial (`--limit`, a set cut short or not scored) or unknown.  The store records it with
each run (the leaderboard ranks complete runs only); `eval` and `score` say it under their
score table (`partial_line`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from imhi_bench.benchmark.sets import SET_NAMES

# Rows of each released test file (format -> set -> rows), for runs whose provenance does not
# say whether a set was scored in full (`run_coverage`); a test checks them against the files.
RELEASED_TEST_ROWS: dict[str, dict[str, int]] = {
    fmt: {"CAMS": 625, "DR": 405, "dreaddit": 414, "Irf": 2113, "loneliness": 528,
          "MultiWD": 2441, "SAD": 684, "t-sid": 959}
    for fmt in ("instruction", "completion")
} | {"expert": {name: 35 for name in SET_NAMES if name != "CLP"}}
COVERAGE_LIMIT = 300  # characters of the store's `runs.coverage`


def run_coverage(
    *,
    source: str,
    tasks: Sequence[str] | None,
    fmt: str | None,
    provenance: Mapping | None,
    counts: Mapping[str, int | None],
) -> tuple[bool | None, str | None]:
    """(complete, why not) of a run: complete (True, None) when it scored every sample of
    every set it claims (`tasks`); partial (False, why) when a claimed set was not scored, a
    set was cut short (its provenance says so, or it scored fewer samples than the released
    file has) or `--limit` was given and not every set is known to be whole; unknown (None,
    why) when nothing says how many samples a set has.  `counts`: set -> samples scored (n).
    The paper's reported rows are complete: they are scored on the full test sets."""
    if source == "reported":
        return True, None
    prov = provenance if isinstance(provenance, Mapping) else {}
    per_set = prov.get("sets") if isinstance(prov.get("sets"), Mapping) else {}
    order = {name: i for i, name in enumerate(SET_NAMES)}
    short, unknown = [], []
    for name in sorted(counts, key=lambda n: order.get(n, len(order))):
        n = counts[name]
        info = per_set.get(name) if isinstance(per_set.get(name), Mapping) else {}
        rows = info.get("rows")
        if not isinstance(rows, int) or isinstance(rows, bool):
            rows = RELEASED_TEST_ROWS.get(info.get("format") or fmt or "instruction",
                                          {}).get(name)
        whole = info.get("complete")
        if whole is None and n is not None and rows is not None:
            whole = n >= rows
        if whole is False:
            short.append(f"{name} {n} of {rows}" if n is not None and rows else
                         f"{name} not every sample")
        elif whole is not True:
            unknown.append(name)
    reasons = []
    limit = prov.get("limit")
    if limit and (short or unknown):
        reasons.append(f"--limit {limit}")
    elif short:
        reasons.append("scored " + ", ".join(short))
    missing = sorted((t for t in tasks or () if t not in counts),
                     key=lambda n: order.get(n, len(order)))
    if missing:
        reasons.append("not scored: " + ", ".join(missing))
    if reasons:
        return False, _clip("; ".join(reasons))
    if unknown:
        return None, _clip("samples scored unknown: " + ", ".join(unknown))
    return True, None


def _clip(text: str) -> str:
    return text if len(text) <= COVERAGE_LIMIT else text[:COVERAGE_LIMIT - 3] + "..."


def partial_line(report: dict) -> str:
    """A score table's warning when the report's run is partial (`run_coverage` over the
    sets it scored: `--limit`, a set cut short), else ""."""
    prov = report.get("provenance") or {}
    complete, why = run_coverage(source="reproduced", tasks=list(report["sets"]), fmt=None,
                                 provenance=prov,
                                 counts={name: m.get("n") for name, m in report["sets"].items()})
    if complete is not False:
        return ""
    return (f"Partial run ({why}): these scores cover only part of the test sets, do not "
            "compare with full-set scores and are not ranked on the leaderboard.\n")
