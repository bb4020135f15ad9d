"""Paired comparison of two runs (`scoring.compare`, `imhi-bench compare`): the vectorised
bootstrap and permutation test against plain loops, identical and differing runs, the
protocol check, store run ids."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from imhi_bench.benchmark.data import load_examples
from imhi_bench.benchmark.sets import NON_CLINICAL_NOTICE, SETS
from imhi_bench.cli.main import main
from imhi_bench.scoring.compare import compare_runs
from imhi_bench.scoring.labels.schema import label_sentence
from imhi_bench.scoring.metrics import bootstrap_weighted_f1, encode
from imhi_bench.scoring.resample import draw_indices, set_seed, swap_masks
from tests.test_score import _write_imhi_py

CLASSES = ("a", "b", "c", "d")


def _random_runs(n: int, seed: int) -> tuple[list, list, list]:
    rng = np.random.default_rng(seed)
    gold = [CLASSES[i] for i in rng.integers(0, 4, n)]
    choices = list(CLASSES) + [None]  # unreadable answers too

    def run(p_right: float) -> list:
        return [g if rng.random() < p_right else choices[rng.integers(0, 5)] for g in gold]

    return gold, run(0.7), run(0.5)


def _sk(metric: str, gold, pred) -> float:
    pred = ["<none>" if p is None else p for p in pred]
    if metric == "accuracy":
        return 100 * accuracy_score(gold, pred)
    average = "weighted" if metric == "weighted_f1" else "macro"
    return 100 * f1_score(gold, pred, labels=sorted(set(gold)), average=average,
                          zero_division=0)


def _as_labels(gold, pred) -> dict:
    return {i: (g, p) for i, (g, p) in enumerate(zip(gold, pred))}


@pytest.mark.parametrize("metric", ["weighted_f1", "accuracy", "macro_f1"])
def test_bootstrap_and_permutation_match_a_plain_loop(metric):
    gold, pred_a, pred_b = _random_runs(150, seed=3)
    n_boot = n_perm = 100
    got = compare_runs({"SAD": _as_labels(gold, pred_a)}, {"SAD": _as_labels(gold, pred_b)},
                       seed=5, n_boot=n_boot, n_perm=n_perm)["sets"]["SAD"][metric]

    # the reference: resample with the set's own indices, score each resample with sklearn
    idx = draw_indices(len(gold), n_boot, set_seed("SAD", 5))
    diffs = []
    for row in idx:
        g = [gold[i] for i in row]
        diffs.append(_sk(metric, g, [pred_b[i] for i in row])
                     - _sk(metric, g, [pred_a[i] for i in row]))
    diffs = np.array(diffs)
    observed = _sk(metric, gold, pred_b) - _sk(metric, gold, pred_a)
    assert got["diff"] == pytest.approx(round(observed, 2), abs=0.011)
    assert got["a"] == pytest.approx(_sk(metric, gold, pred_a), abs=0.006)
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    assert got["ci"] == pytest.approx([lo, hi], abs=0.006)
    below = sum(d <= 0 for d in diffs)
    above = sum(d >= 0 for d in diffs)
    p = min(1.0, 2 * min(below + 1, above + 1) / (n_boot + 1))
    assert got["p_bootstrap"] == pytest.approx(p, abs=1e-4)

    # permutation: swap each sample's two predictions where the set's mask says so
    masks = swap_masks("SAD", len(gold), 5, n_perm)
    hits = 0
    for mask in masks:
        a = [pb if m else pa for pa, pb, m in zip(pred_a, pred_b, mask)]
        b = [pa if m else pb for pa, pb, m in zip(pred_a, pred_b, mask)]
        if abs(_sk(metric, gold, b) - _sk(metric, gold, a)) >= abs(observed) - 1e-9:
            hits += 1
    assert got["p_permutation"] == pytest.approx((hits + 1) / (n_perm + 1), abs=1e-4)


def test_each_run_is_resampled_with_the_draws_of_its_own_ci():
    from imhi_bench.scoring.compare import encode_runs, scores_under
    from imhi_bench.scoring.resample import bootstrap_weights

    gold, pred_a, _ = _random_runs(300, seed=1)
    y_true, y_pred, k = encode_runs(gold, [pred_a])
    mine = scores_under(bootstrap_weights("CAMS", 300, 2, 500), y_true, y_pred, k)
    t, p, _ = encode(gold, pred_a)
    ci_draws = bootstrap_weighted_f1(t, p, k, 500, set_seed("CAMS", 2))
    np.testing.assert_allclose(mine["weighted_f1"][0], ci_draws, atol=1e-9)


def test_mean_pairs_the_sets_draw_by_draw():
    gold, pred_a, pred_b = _random_runs(120, seed=7)
    one = {"DR": _as_labels(gold, pred_a), "SAD": _as_labels(gold, pred_a)}
    two = {"DR": _as_labels(gold, pred_b), "SAD": _as_labels(gold, pred_a)}
    got = compare_runs(one, two, n_boot=300, n_perm=300)
    sad, dr, mean = got["sets"]["SAD"], got["sets"]["DR"], got["mean"]
    assert sad["weighted_f1"]["diff"] == 0 and sad["weighted_f1"]["p_bootstrap"] == 1
    assert mean["sets"] == ["DR", "SAD"]
    assert mean["weighted_f1"]["diff"] == pytest.approx(dr["weighted_f1"]["diff"] / 2, abs=0.01)
    # half the difference over the same draws: the CI halves too
    assert mean["weighted_f1"]["ci"] == pytest.approx(
        [x / 2 for x in dr["weighted_f1"]["ci"]], abs=0.01)


def test_only_shared_doc_ids_are_compared_and_gold_must_agree():
    from imhi_bench.core.errors import ImhiError

    gold, pred_a, pred_b = _random_runs(50, seed=2)
    a = _as_labels(gold, pred_a)
    b = {i: v for i, v in _as_labels(gold, pred_b).items() if i % 2 == 0}
    got = compare_runs({"DR": a}, {"DR": b}, n_boot=50, n_perm=50)["sets"]["DR"]
    assert (got["n"], got["only_a"], got["only_b"]) == (25, 25, 0)
    b[0] = ("zzz", b[0][1])
    with pytest.raises(ImhiError, match="different gold labels"):
        compare_runs({"DR": a}, {"DR": b})


# --------------------------------------------------------------------------- the CLI

SETS_USED = ("DR", "SAD", "t-sid")
N = 120


def _folder(imhi_dir, dest, wrong_in: str | None = None, protocol: str | None = None):
    """Gold responses as generations (every label right), except in `wrong_in`, where 70% of
    the answers name another class."""
    dest.mkdir()
    for name in SETS_USED:
        ex = load_examples(name, "instruction", imhi_dir)[:N]
        gens = [e.gold for e in ex]
        if name == wrong_in:
            classes = SETS[name].classes
            for i in range(0, N):
                if i % 10 < 7:
                    other = classes[(classes.index(_gold_class(name, gens[i])) + 1)
                                    % len(classes)]
                    gens[i] = label_sentence(name, other) + " Reasoning: it reads so."
        _write_imhi_py(dest / f"{name}.csv", [e.gold for e in ex], gens)
    if protocol is not None:
        (dest / "imhi_results.json").write_text(json.dumps(
            {"provenance": {"protocol": {"id": protocol, "name": f"p-{protocol}"}}}))
    return dest


def _gold_class(name, text):
    from imhi_bench.scoring.labels.gold import gold_label

    return gold_label(name, text)


@pytest.fixture
def folders(imhi_dir, tmp_path):
    return (_folder(imhi_dir, tmp_path / "a"), _folder(imhi_dir, tmp_path / "same"),
            _folder(imhi_dir, tmp_path / "worse", wrong_in="SAD"))


def test_identical_runs_differ_by_zero_with_p_one(folders, tmp_path, capsys):
    a, same, _ = folders
    out_json = tmp_path / "cmp.json"
    assert main(["compare", str(a), str(same), "--json", str(out_json),
                 "--bootstrap", "300", "--permutations", "300"]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith(NON_CLINICAL_NOTICE)
    # IMHI.py folders: the protocol `score` would record, saying the prompts are unknown
    assert "Same protocol prompts unknown" in out and "as far as recorded" in out
    got = json.loads(out_json.read_text())
    assert list(got["sets"]) == list(SETS_USED)
    for block in [*got["sets"].values(), got["mean"]]:
        for metric in ("weighted_f1", "accuracy", "macro_f1"):
            m = block[metric]
            assert (m["diff"], m["ci"], m["p_bootstrap"], m["p_permutation"]) == \
                (0, [0, 0], 1, 1), metric
    assert got["notice"] == NON_CLINICAL_NOTICE


def test_runs_differing_on_one_set_have_a_ci_excluding_zero_there(folders, tmp_path, capsys):
    a, _, worse = folders
    out_json = tmp_path / "cmp.json"
    assert main(["compare", str(a), str(worse), "--json", str(out_json)]) == 0
    got = json.loads(out_json.read_text())
    sad = got["sets"]["SAD"]["weighted_f1"]
    assert sad["diff"] < -30 and sad["ci"][1] < 0
    assert sad["p_bootstrap"] < 0.01 and sad["p_permutation"] < 0.01
    for name in ("DR", "t-sid"):
        assert got["sets"][name]["weighted_f1"]["diff"] == 0
        assert got["sets"][name]["weighted_f1"]["p_permutation"] == 1
    assert got["mean"]["weighted_f1"]["ci"][1] < 0
    out = capsys.readouterr().out
    assert "SAD" in out and f"{sad['diff']:+.2f}" in out


def test_different_protocols_are_refused_unless_asked(imhi_dir, tmp_path, capsys):
    a = _folder(imhi_dir, tmp_path / "a", protocol="aaa111")
    b = _folder(imhi_dir, tmp_path / "b", protocol="bbb222")
    out_json = tmp_path / "cmp.json"
    assert main(["compare", str(a), str(b), "--json", str(out_json)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "different protocols" in err and "--any-protocol" in err
    assert not out_json.exists()
    assert main(["compare", str(a), str(b), "--any-protocol", "--bootstrap", "50",
                 "--permutations", "0"]) == 0
    assert "Different protocols, compared anyway" in capsys.readouterr().out
    c = _folder(imhi_dir, tmp_path / "c", protocol="aaa111")
    assert main(["compare", str(a), str(c), "--bootstrap", "50"]) == 0
    assert "Same protocol p-aaa111 (aaa111)" in capsys.readouterr().out


def test_store_run_ids_and_the_compare_page(folders, tmp_path, capsys, monkeypatch):
    a, _, worse = folders
    db = tmp_path / "store.sqlite"
    for folder, name in ((a, "model-a"), (worse, "model-b")):
        assert main(["score", "--predictions", str(folder), "--name", name, "--db", str(db),
                     "--bootstrap", "0"]) == 0
    capsys.readouterr()
    out_json = tmp_path / "cmp.json"
    assert main(["compare", "run:1", "2", "--db", str(db), "--json", str(out_json)]) == 0
    got = json.loads(out_json.read_text())
    assert got["sets"]["SAD"]["weighted_f1"]["ci"][1] < 0
    before = db.read_bytes()
    assert main(["compare", "run:1", "run:9", "--db", str(db)]) == 2
    assert "no run 9" in capsys.readouterr().err
    assert db.read_bytes() == before

    # the compare page shows the same numbers
    from streamlit.testing.v1 import AppTest

    from imhi_bench.leaderboard import app as app_module

    monkeypatch.setenv("IMHI_DB_URL", f"sqlite:///{db}")
    at = AppTest.from_file(app_module.__file__, default_timeout=60).run()
    at.sidebar.radio(key="page").set_value("Compare").run()
    assert not at.exception, at.exception
    paired = next(d.value for d in at.dataframe if "p permutation" in d.value.columns)
    row = paired[(paired["set"] == "SAD") & (paired["metric"] == "weighted F1")].iloc[0]
    want = got["sets"]["SAD"]["weighted_f1"]
    assert (row["B - A"], row["p bootstrap"], row["p permutation"]) == \
        (want["diff"], want["p_bootstrap"], want["p_permutation"])
    assert row["95% CI"] == f"{want['ci'][0]:.2f} to {want['ci'][1]:.2f}"
    assert "prompts unknown" in " ".join(t.value for t in at.text)


@pytest.mark.parametrize("argv, message", [
    (["{a}", "{same}", "--bootstrap", "-1"], "--bootstrap -1"),
    (["{a}", "{same}", "--permutations", "-2"], "--permutations -2"),
    (["{a}", "{tmp}/missing"], "does not exist"),
    (["{a}", "{same}", "--json", "{tmp}"], "is a folder"),
    (["{a}", "{tmp}/empty"], "holds no prediction files"),
    (["{a}", "{tmp}/other", "--any-protocol"], "share no scored sample"),
])
def test_bad_input_is_one_line_and_writes_nothing(folders, tmp_path, capsys, argv, message):
    a, same, _ = folders
    (tmp_path / "empty").mkdir()
    (tmp_path / "other").mkdir()
    _write_imhi_py(tmp_path / "other" / "CAMS.csv", ["This post shows no causes of depression."],
                   ["none"])
    before = sorted(p.name for p in tmp_path.rglob("*"))
    argv = [x.format(a=a, same=same, tmp=tmp_path) for x in argv]
    assert main(["compare", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
