"""`imhi-bench contamination`: honest calibration on tiny Llamas trained through
`imhi-bench train`, the statistics, bad input, and the worker/leaderboard path.

Calibration: one tiny Llama is trained on the first N DR *test* pairs (a data dir whose DR
train file holds them and whose DR test file holds DR train rows, so the trainer's
test-post filter lets them through), another, identically, on N released DR train pairs.
The check (first N DR test items against N seeded DR val items) must call the first
contaminated, and the second and the untrained model clean.  The two trainings run at once,
as subprocesses with one torch thread each (about 20 s each on 2 shared cores).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_models import build_tiny_llama, torch_threads

from imhi_bench.benchmark.data import read_csv
from imhi_bench.benchmark.sets import GOLD_COLUMN, NON_CLINICAL_NOTICE, QUERY_COLUMN
from imhi_bench.cli.main import main
from imhi_bench.scoring import contamination as stats

ROOT = Path(__file__).resolve().parents[1]
N = 16  # items trained on, and test / held-out items checked
TRAIN = ["report_to=none", "max_length=512", "per_device_batch_size=4",
         "gradient_accumulation_steps=1", "max_val=4", "eval_steps=0", "seed=7",
         "max_steps=40", "learning_rate=5e-3", "precision=fp32", "sets=DR",
         "logging_steps=60", f"max_train={N}"]
CHECK = ["--sets", "DR", "--limit", str(N)]
ERROR = "imhi-bench: error: "


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=(QUERY_COLUMN, GOLD_COLUMN), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def contaminated_data(imhi_dir: Path, out: Path) -> Path:
    """A data dir whose DR train file is the first N DR test pairs, and whose DR test file
    is DR train rows (so no train row is dropped as a test post)."""
    cols = (QUERY_COLUMN, GOLD_COLUMN)
    test = read_csv(imhi_dir / "test_data/test_instruction/DR.csv", cols)[:N]
    train = read_csv(imhi_dir / "train_data/instruction_data/DR/train.csv", cols)[:N]
    _write(out / "train_data/instruction_data/DR/train.csv", test)
    _write(out / "test_data/test_instruction/DR.csv", train)
    return out


@pytest.fixture(scope="module")
def trained(imhi_dir, tmp_path_factory) -> dict[str, Path]:
    """{"untrained", "contaminated", "clean"}: model folders (see the module docstring)."""
    import os

    root = tmp_path_factory.mktemp("contam")
    base = build_tiny_llama(root / "base")
    runs = {"contaminated": contaminated_data(imhi_dir, root / "data"), "clean": imhi_dir}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    procs = {name: subprocess.Popen(
        [sys.executable, "-m", "imhi_bench", "train", f"model={base}",
         f"output_dir={root / name}", f"data_dir={data}", *TRAIN],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for name, data in runs.items()}
    for name, p in procs.items():
        out = p.communicate(timeout=600)[0].decode("utf-8", "replace")
        assert p.returncode == 0, f"{name}: {out[-3000:]}"
    card = json.loads((root / "contaminated/imhi_training_card.json").read_text("utf-8"))
    # the trainer kept every row: the DR test pairs went in, none dropped as a test post
    assert card["rows"]["per_set"]["DR"]["train"] == N
    assert card["rows"]["per_set"]["DR"]["train_dropped_in_test"] == 0
    return {"untrained": base, "contaminated": root / "contaminated", "clean": root / "clean"}


def check(model: Path, tmp_path: Path, capsys, *extra: str) -> dict:
    out = tmp_path / f"{model.name}-{len(extra)}.json"
    with torch_threads(1):
        rc = main(["contamination", "--model", str(model), *CHECK, "--json", str(out), *extra])
    text, err = capsys.readouterr()
    assert rc == 0, err
    assert NON_CLINICAL_NOTICE in text and "overall: " in text
    return json.loads(out.read_text("utf-8"))


def test_calibration_contaminated_flagged_clean_and_untrained_not(trained, tmp_path, capsys):
    reports = {name: check(path, tmp_path, capsys) for name, path in trained.items()}
    # README's calibration table and the sentence under it, as `pytest -s` shows them: per
    # model the verdict, adjusted p, d and its statistic, and per statistic the test -
    # held-out effect, the (test, held-out) pairs with the test item above, the raw p
    figures = {
        name: {k: r["sets"]["DR"][k] for k in ("verdict", "p_adjusted", "d", "statistic")}
        | {s: {"effect": round(c["effect"], 3),
               "pairs_test_above": f"{round(c['auc'] * c['n_test'] * c['n_held_out'])} of "
                                   f"{c['n_test'] * c['n_held_out']}",
               "p": c["p"]}
           for s, c in r["sets"]["DR"]["model"].items()}
        for name, r in reports.items()}
    with capsys.disabled():  # capsys holds stdout even under -s
        print("\ncalibration figures:", json.dumps(figures, indent=1))
    assert reports["contaminated"]["verdict"] == stats.CONTAMINATED, figures
    assert reports["clean"]["verdict"] == stats.CLEAN, figures
    assert reports["untrained"]["verdict"] == stats.CLEAN, figures
    dr = reports["contaminated"]["sets"]["DR"]
    assert dr["n_test"] == dr["n_held_out"] == N
    assert dr["p_adjusted"] < stats.CONTAMINATED_P and dr["d"] >= stats.CONTAMINATED_D
    # the statistic is the model's, not the data's: training on train pairs shifts test and
    # held-out alike, training on the test pairs shifts the test items far more
    gain = reports["contaminated"]["sets"]["DR"]["model"]["loglik"]["effect"]
    assert gain > 5 * abs(reports["clean"]["sets"]["DR"]["model"]["loglik"]["effect"])
    # sets without held-out data are named as not checked
    assert "CAMS" not in reports["clean"]["sets"]


def test_base_takes_out_what_is_intrinsic(trained, tmp_path, capsys):
    r = check(trained["contaminated"], tmp_path, capsys, "--base", str(trained["untrained"]))
    dr = r["sets"]["DR"]
    assert dr["basis"] == "difference" and r["verdict"] == stats.CONTAMINATED
    for s in stats.STATISTICS:  # difference of means = model's effect - base's effect
        assert dr["difference"][s]["effect"] == pytest.approx(
            dr["model"][s]["effect"] - dr["base"][s]["effect"], abs=1e-9)
    clean = check(trained["clean"], tmp_path, capsys, "--base", str(trained["untrained"]))
    assert clean["verdict"] == stats.CLEAN


# --------------------------------------------------------------------------- statistics


def test_min_k_and_verdict_thresholds():
    s = stats.item_scores([-1.0, -2.0, -3.0, -4.0, -10.0])
    assert s["loglik"] == pytest.approx(-4.0)
    assert s["min_k"] == pytest.approx(-10.0)  # ceil(20% of 5) = 1 lowest token
    same = [float(i) for i in range(20)]
    c = stats.compare_sets([{"loglik": x, "min_k": x} for x in same],
                           [{"loglik": x, "min_k": x} for x in same])
    assert stats.decide(c, 5)["verdict"] == stats.CLEAN
    high = [{"loglik": x + 100, "min_k": x + 100} for x in same]
    c = stats.compare_sets(high, [{"loglik": x, "min_k": x} for x in same])
    d = stats.decide(c, 5)
    assert d["verdict"] == stats.CONTAMINATED and d["p_adjusted"] < stats.CONTAMINATED_P
    # a tiny shift over many items: a small p, a small d: suspect, not contaminated
    import random

    rng = random.Random(0)
    held = [rng.gauss(0, 1) for _ in range(4000)]
    test = [rng.gauss(0.25, 1) for _ in range(4000)]
    c = stats.compare_sets([{"loglik": x, "min_k": x} for x in test],
                           [{"loglik": x, "min_k": x} for x in held])
    assert stats.decide(c, 5)["verdict"] == stats.SUSPECT
    assert stats.worst([None, "clean", "suspect"]) == "suspect"
    assert stats.flagged({"verdict": "suspect"}) and not stats.flagged(
        {"verdict": "suspect", "cleared": {"note": "ok"}})
    assert stats.badge({"verdict": "contaminated", "p_adjusted": 1e-7}) == \
        "contaminated (p=1e-07)"


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("args, message", [
    ([], "--model is required"),
    (["--model", "M", "--limit", "0"], "--limit 0: give a positive number"),
    (["--model", "M", "--limit", "1"], "--limit 1: the check needs at least 2"),
    (["--model", "M", "--sets", "CAMS"], "no set to check under"),
    (["--model", "M", "--sets", "nope"], "unknown IMHI set 'nope'"),
])
def test_bad_input_one_line_before_any_loading(args, message, tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = main(["contamination", *args, "--json", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(ERROR) and message in lines[0], err
    assert not out.exists()


def test_clear_refuses_an_unknown_run(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    assert main(["contamination", "clear", "7", "--db", url]) == 2
    assert capsys.readouterr().err.strip() == (
        f"{ERROR}no run 7 in the store: see the leaderboard's run_id column")


# --------------------------------------------------------------------------- worker


def test_worker_records_the_verdict_and_a_flagged_run_is_not_ranked(trained, tmp_path,
                                                                     monkeypatch, capsys):
    """Two submissions through `submit` and the worker: the run of the model trained on the
    test pairs carries a contaminated verdict (against its base, which `submit` took from
    the training card), shows the badge and is left out of the ranking until an operator
    clears it; the model trained on train pairs is clean and ranked."""
    from sqlalchemy import select

    from imhi_bench.leaderboard import data
    from imhi_bench.store.engine import open_store, store_engine
    from imhi_bench.store.tables import Run, Submission

    url = f"sqlite:///{tmp_path / 'q.sqlite'}"
    monkeypatch.setenv("IMHI_SUBMISSIONS_DIR", str(tmp_path / "subs"))
    for name in ("contaminated", "clean"):
        assert main(["submit", "--model", str(trained[name]), "--name", name, "--db", url]) == 0
    factory = open_store(url)
    with factory() as s:
        bases = dict(s.execute(select(Submission.name, Submission.base_model)).all())
    assert bases == {"contaminated": str(trained["untrained"]),
                     "clean": str(trained["untrained"])}
    with torch_threads(1):
        assert main(["worker", "--drain", "--db", url, "--tasks", "imhi_dr", "--limit", str(N),
                     "--max-new-tokens", "4", "--bootstrap", "0"]) == 0
    out = capsys.readouterr().out
    assert "done: 2 finished, 0 failed" in out and "overall: contaminated" in out
    with factory() as s:
        checks = {name: prov["contamination"] for name, prov in s.execute(
            select(Submission.name, Run.provenance)
            .join(Run, Run.submission_id == Submission.id)).all()}
    assert checks["contaminated"]["verdict"] == stats.CONTAMINATED
    assert checks["contaminated"]["sets"]["DR"]["basis"] == "difference"
    assert checks["contaminated"]["base"] == str(trained["untrained"])
    assert checks["clean"]["verdict"] == stats.CLEAN

    def table():
        runs = data.load_runs(store_engine(factory))
        runs["complete"] = True  # as if unlimited: ranking turns on the check alone here
        t = data.leaderboard_table(runs, data.load_scores(store_engine(factory)),
                                   sets=["DR"], include_partial=True,
                                   protocol=data.ALL_PROTOCOLS)
        return t.set_index("model")

    t = table()
    assert not t.loc["contaminated", data.RANKED] and t.loc["clean", data.RANKED]
    assert t.loc["contaminated", data.CONTAMINATION_COLUMN].startswith("contaminated (p=")
    assert t.loc["clean", data.CONTAMINATION_COLUMN] == ""
    run_id = int(t.loc["contaminated", "run_id"])
    assert main(["contamination", "clear", str(run_id), "--db", url,
                 "--note", "checked by hand"]) == 0
    assert "contaminated cleared" in capsys.readouterr().out
    t = table()
    assert t.loc["contaminated", data.RANKED]
    assert t.loc["contaminated", data.CONTAMINATION_COLUMN].endswith(": cleared")
    # a clean run has nothing to clear
    clean_id = int(t.loc["clean", "run_id"])
    assert main(["contamination", "clear", str(clean_id), "--db", url]) == 2
    assert "is not flagged by the contamination check" in capsys.readouterr().err


def test_a_submission_without_held_out_data_is_recorded_as_not_checked():
    from imhi_bench.queue.contamination import screen
    from imhi_bench.queue.worker import WorkerOptions

    sub = {"model": "/nowhere", "adapter": "", "revision": "sha256:" + "0" * 64,
           "base_model": None, "backend": "hf", "precision": "fp32", "allow_pickle": False,
           "needs_remote_code": False}
    logged: list[str] = []
    got = screen(sub, WorkerOptions(limit=4), sets=["CAMS", "t-sid"], log=logged.append)
    assert got["verdict"] is None and got["error"].startswith("no set to check under")
    assert any("contamination check not run" in line for line in logged)
