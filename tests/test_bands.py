"""Rank bands (`scoring.bands`) against plain loops, and on the leaderboard's ranked view
and CSV (`leaderboard.band_data`)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from imhi_bench.benchmark.sets import NON_CLINICAL_NOTICE, SETS
from imhi_bench.cli.main import main
from imhi_bench.leaderboard import data
from imhi_bench.scoring.bands import holm, mean_replicates, rank_bands, significantly_better
from imhi_bench.scoring.pipeline import Sample, score_samples
from imhi_bench.scoring.protocol import default_protocol, protocol_json
from imhi_bench.scoring.resample import draw_indices, set_seed
from imhi_bench.store.engine import open_store, store_engine
from imhi_bench.store.record import record_scored
from imhi_bench.store.reported import load_reported
from tests.test_leaderboard import CHROMIUM, _grids, served_in_chromium


def _holm_loop(p, alpha=0.05):
    order = sorted(range(len(p)), key=lambda i: p[i])
    reject = [False] * len(p)
    for rank, i in enumerate(order):
        if p[i] > alpha / (len(p) - rank):
            break
        reject[i] = True
    return reject


def test_holm_matches_a_plain_step_down():
    rng = np.random.default_rng(0)
    for _ in range(50):
        p = rng.random(12) ** 4
        assert holm(p).tolist() == _holm_loop(p.tolist())
    # one small p passes alone; the second is judged against alpha / 1 only after the first
    assert holm(np.array([0.01, 0.04])).tolist() == [True, True]
    assert holm(np.array([0.03, 0.04])).tolist() == [False, False]


def _runs(skills, sets=("DR", "SAD"), n=80, seed=0):
    rng = np.random.default_rng(seed)
    gold = {s: [SETS[s].classes[i] for i in rng.integers(0, len(SETS[s].classes), n)]
            for s in sets}
    out = {}
    for r, skill in enumerate(skills):
        out[r] = {}
        for s, g in gold.items():
            classes = list(SETS[s].classes) + [None]
            out[r][s] = (g, [x if rng.random() < skill else classes[rng.integers(len(classes))]
                             for x in g])
    return out


def test_mean_replicates_and_significance_match_plain_loops():
    sets, n_boot = ("DR", "SAD"), 40
    runs = _runs([0.9, 0.85, 0.5, 0.3], sets)
    points, reps = mean_replicates(list(runs.values()), sets, seed=1, n_boot=n_boot)

    def wf1(gold, pred):
        pred = ["<none>" if p is None else p for p in pred]
        return 100 * f1_score(gold, pred, labels=sorted(set(gold)), average="weighted",
                              zero_division=0)

    ref = np.zeros((len(runs), n_boot))
    for s in sets:
        gold = runs[0][s][0]
        idx = draw_indices(len(gold), n_boot, set_seed(s, 1))
        for r, per_set in runs.items():
            pred = per_set[s][1]
            ref[r] += [wf1([gold[i] for i in row], [pred[i] for i in row]) for row in idx]
    ref /= len(sets)
    np.testing.assert_allclose(reps, ref, atol=1e-9)
    np.testing.assert_allclose(points, [np.mean([wf1(*per_set[s]) for s in sets])
                                        for per_set in runs.values()], atol=1e-9)

    # pairwise: the z of each pair's paired difference, Holm over the 6 pairs
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    p = []
    for i, j in pairs:
        diff = ref[i] - ref[j]
        se = float(np.std(diff, ddof=1))
        p.append(math.erfc(abs(points[i] - points[j]) / se / math.sqrt(2)) if se else 1.0)
    expect = np.zeros((4, 4), dtype=bool)
    for (i, j), rejected in zip(pairs, _holm_loop(p)):
        if rejected:
            expect[(i, j) if points[i] > points[j] else (j, i)] = True
    assert significantly_better(points, reps).tolist() == expect.tolist()


def test_runs_a_noise_apart_share_a_band():
    runs = _runs([0.8, 0.3], n=150)
    close = {s: (g, list(p)) for s, (g, p) in runs[0].items()}
    for g, p in close.values():  # one answer changed per set: noise
        p[0] = g[0] if p[0] != g[0] else None
    bands = rank_bands({"a": runs[0], "b": close, "c": runs[1]}, ["DR", "SAD"])
    assert (bands["a"].text, bands["b"].text, bands["c"].text) == ("1–2", "1–2", "3")
    same = rank_bands({k: runs[0] for k in "xyz"}, ["DR"])
    assert {b.text for b in same.values()} == {"1–3"}
    assert rank_bands({"only": runs[0]}, ["DR"])["only"].text == "1"
    other_gold = {s: (list(reversed(g)), p) for s, (g, p) in runs[1].items()}
    with pytest.raises(ValueError, match="gold labels differ"):
        rank_bands({"a": runs[0], "b": other_gold}, ["DR"])


# --------------------------------------------------------------------------- leaderboard

N = 40  # samples per set


def _record(factory, name: str, skill: float, swap: int = 0, seed: int = 0,
            protocol: dict | None = None) -> int:
    """A complete run over the 8 ranked sets, right on `skill` of the samples; with `swap`,
    per set, that many right answers made wrong and as many wrong ones made right: a run a
    noise apart from the one of the same seed."""
    rng = np.random.default_rng(seed)
    samples = {}
    for s in data.RANKED_SETS:
        classes = SETS[s].classes
        gold = [classes[i % len(classes)] for i in range(N)]
        right = rng.random(N) < skill
        for flipped in (np.flatnonzero(right)[:swap], np.flatnonzero(~right)[:swap]):
            right[flipped] = ~right[flipped]
        labels = [g if ok else classes[(classes.index(g) + 1) % len(classes)]
                  for g, ok in zip(gold, right)]
        samples[s] = [Sample(s, i, f"gold {i}", f"gen {i}", g, lab, g == lab)
                      for i, (g, lab) in enumerate(zip(gold, labels))]
    report = score_samples(samples, n_boot=0)
    report["provenance"] = {"format": "instruction",
                            "sets": {s: {"rows": N, "complete": True} for s in samples},
                            # made under the default protocol, as eval records it
                            "protocol": protocol or protocol_json(default_protocol())}
    return record_scored(factory, report, samples, model={"name": name})


def test_two_rows_a_noise_apart_share_a_band_in_the_view_and_csv(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    factory = open_store(url)
    load_reported(factory)
    _record(factory, "best", 0.9, seed=1)
    _record(factory, "best-again", 0.9, swap=2, seed=1)  # 4 answers per set differ
    _record(factory, "weak", 0.2, seed=2)
    view = data.default_view(store_engine(factory), csv=True)  # every column
    bands = dict(zip(view["model"], view[data.BAND_COLUMN]))
    assert bands["best"] == bands["best-again"] == "1–2"
    assert bands["weak"] == "3"
    # the paper's rows have no samples and another protocol: beside the ranking, no band
    assert not (view["source"] == "reported").any()

    out = tmp_path / "ranked.csv"
    assert main(["leaderboard", "--db", url, "--csv", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "rank band" in printed and NON_CLINICAL_NOTICE in printed
    written = pd.read_csv(out)
    assert list(written.columns[:3]) == [data.RANK_COLUMN, "model", data.BAND_COLUMN]
    rows = dict(zip(written["model"], written[data.BAND_COLUMN]))
    assert rows["best"] == rows["best-again"] == "1–2" and rows["weak"] == "3"
    assert not (written["source"] == "reported").any()


def test_a_view_mixing_protocols_bands_each_protocol_apart(tmp_path):
    from dataclasses import replace

    factory = open_store(f"sqlite:///{tmp_path / 'lb.sqlite'}")
    _record(factory, "best", 0.9, seed=1)
    _record(factory, "best-again", 0.9, swap=2, seed=1)
    _record(factory, "weak", 0.2, seed=2)
    sampled = protocol_json(replace(default_protocol(), decoding="sampling (temperature 1)"))
    _record(factory, "sampled", 0.5, seed=3, protocol=sampled)
    engine = store_engine(factory)
    mixed = data.default_view(engine, protocol=data.ALL_PROTOCOLS)
    bands = dict(zip(mixed["model"], mixed[data.BAND_COLUMN]))
    # alone in its protocol: rank 1 there, though below "best" in the mixed table
    assert bands == {"best": "1–2", "best-again": "1–2", "weak": "3", "sampled": "1"}
    assert "sampled" not in set(data.default_view(engine)["model"])


def test_the_app_shows_the_bands_with_the_method(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from imhi_bench.leaderboard.band_data import BAND_NOTE

    url = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    monkeypatch.setenv("IMHI_DB_URL", url)
    factory = open_store(url)
    _record(factory, "best", 0.9, seed=1)
    _record(factory, "best-again", 0.9, swap=2, seed=1)
    at = AppTest.from_file(str(data.__file__).replace("data.py", "app.py"),
                           default_timeout=60).run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert list(table[data.BAND_COLUMN]) == ["1–2", "1–2"]
    assert any("Holm" in c.value and BAND_NOTE in c.value for c in at.caption)


@pytest.mark.skipif(not Path(CHROMIUM).exists(),
                    reason=f"{CHROMIUM} is absent: apt-get install -y chromium (as .ci/run does)")
def test_bands_and_where_it_errs_in_a_real_browser(tmp_path):
    """Served app, Chromium: the ranked table's bands, and the model page's confusion
    matrices and per-class F1 for every set of a run."""
    url = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    factory = open_store(url)
    load_reported(factory)
    _record(factory, "best", 0.9, seed=1)
    _record(factory, "best-again", 0.9, swap=2, seed=1)
    _record(factory, "weak", 0.2, seed=2)
    with served_in_chromium(url, tmp_path, {"width": 1800, "height": 1100}) as (page, port):
        page.goto(f"http://127.0.0.1:{port}/")
        grid = '[data-testid="stDataFrame"] table[role="grid"]'
        page.wait_for_function(
            "sel => Array.from(document.querySelectorAll(sel))"
            ".some(td => td.innerText === 'best-again')",
            arg=f"{grid} td", timeout=60_000)
        grids = _grids(page)  # the ranked table, then the paper's rows beside it
        ranked = grids[0]
        header = ranked[0]
        band = {r[header.index("model")]: r[header.index("band")]  # the narrow header
                for r in ranked[1:]}
        assert band == {"best": "1–2", "best-again": "1–2", "weak": "3"}
        rank = {r[header.index("model")]: r[header.index(data.RANK_COLUMN)]
                for r in ranked[1:]}
        assert rank["weak"] == "3" and {rank["best"], rank["best-again"]} == {"1", "2"}
        assert "MentaLLaMA-chat-13B" in [r[0] for g in grids[1:] for r in g]
        page.get_by_text("Holm-corrected", exact=False).first.wait_for()
        page.screenshot(path=str(tmp_path / "bands.png"))

        page.get_by_text("Model", exact=True).click()  # its first run: "best"
        page.get_by_text("Where it errs").wait_for(timeout=30_000)
        for name in data.RANKED_SETS:
            page.get_by_text(f"{name}: {N} samples").wait_for(timeout=30_000)
        # the grids draw one after another: wait until every set's matrix is in the page
        page.wait_for_function(
            "([sel, n]) => { const t = Array.from(document.querySelectorAll(sel))"
            ".map(r => r.innerText); return t.filter(h => h.includes('support')).length >= n"
            " && t.filter(h => h.includes('gold \\\\ read')).length >= n; }",
            arg=[f"{grid} tr:first-child", len(data.RANKED_SETS)], timeout=60_000)
        headers = page.eval_on_selector_all(
            f"{grid} tr:first-child", "rows => rows.map(r => r.innerText)")
        assert sum("gold \\ read" in h for h in headers) == len(data.RANKED_SETS)
        assert sum("support" in h for h in headers) == len(data.RANKED_SETS)
        page.get_by_text("Where it errs").scroll_into_view_if_needed()
        page.screenshot(path=str(tmp_path / "errors.png"))
    assert (tmp_path / "errors.png").stat().st_size > 10_000
