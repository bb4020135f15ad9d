"""The submission queue and `imhi-bench worker` / `status`: claims are atomic across
processes (SQLite, and PostgreSQL when a server can be started), 3 submissions drained by
2 worker processes end FINISHED with exactly one run each, a SIGKILLed worker's job returns
to PENDING after the heartbeat timeout and another worker finishes it from the cached
generations, and every failure ends as FAILED with a one-line reason."""

from __future__ import annotations

import datetime as _dt
import json
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select
from tiny_models import build_tiny_llama, cached_generations

from imhi_bench.benchmark.sets import NON_CLINICAL_NOTICE
from imhi_bench.cli.main import main
from imhi_bench.core.clock import utcnow
from imhi_bench.core.errors import ImhiError
from imhi_bench.queue import jobs as queue
from imhi_bench.queue import worker
from imhi_bench.store.engine import open_store
from imhi_bench.store.record import record_run
from imhi_bench.store.tables import Run, Submission

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ["--tasks", "imhi_dr", "--limit", "2", "--max-new-tokens", "4", "--bootstrap", "20"]


# --------------------------------------------------------------------------- stores


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'queue.sqlite'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def any_url(request) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


def add(factory, name: str, *, seconds: int = 0, **fields) -> str:
    """A submission row as `submit` writes it (for queue tests that run no model)."""
    row = {"id": f"{name.lower()}-{uuid.uuid4().hex[:10]}", "name": name,
           "model": f"/models/{name}", "revision": "sha256:" + "0" * 64, "precision": "fp32",
           "backend": "hf", "adapter": "", "adapter_revision": "",
           "dedupe_key": uuid.uuid4().hex * 2, "needs_remote_code": False,
           "allow_pickle": False, "status": "PENDING",
           "submitted": _dt.datetime(2026, 1, 1) + _dt.timedelta(seconds=seconds), **fields}
    with factory.begin() as s:
        s.add(Submission(**row))
    return row["id"]


def rows(factory) -> dict[str, dict]:
    return {r["id"]: r for r in queue.list_submissions(factory)}


def fake_record(factory, name="m"):
    """A `record` for queue.finish: one tiny run, as the worker's record() would write."""
    def record(session):
        return record_run(session, model={"name": name}, run={},
                                results={"sets": {"DR": {"weighted_f1": 50.0, "n": 2}}})
    return record


# --------------------------------------------------------------------------- claims


def test_claims_take_the_oldest_runnable_job_once(sqlite_url):
    factory = open_store(sqlite_url)
    late = add(factory, "late", seconds=20)
    early = add(factory, "early", seconds=10)
    code = add(factory, "code", seconds=0, needs_remote_code=True)
    a = queue.claim(factory, "A")
    assert (a.id, a.attempt, a.worker) == (early, 1, "A")  # remote code skipped
    b = queue.claim(factory, "B")
    assert b.id == late
    assert queue.claim(factory, "C") is None
    trusted = queue.claim(factory, "D", trust_remote_code=True)
    assert trusted.id == code
    state = rows(factory)
    assert {i: (r["status"], r["worker"]) for i, r in state.items()} == {
        early: ("RUNNING", "A"), late: ("RUNNING", "B"), code: ("RUNNING", "D")}
    assert state[early]["heartbeat"] == state[early]["claimed_at"] == a.claimed_at


def test_stale_jobs_return_to_pending_and_a_late_worker_cannot_finish(sqlite_url):
    factory = open_store(sqlite_url)
    sub = add(factory, "m")
    a = queue.claim(factory, "A")
    assert queue.beat(factory, a)
    now = utcnow()
    assert queue.requeue_stale(factory, 60, now=now) == []  # fresh heartbeat: kept
    assert queue.requeue_stale(factory, 60, now=now + _dt.timedelta(seconds=61)) == [sub]
    r = rows(factory)[sub]
    assert (r["status"], r["worker"], r["attempts"]) == ("PENDING", None, 1)
    assert "no heartbeat for 60 s" in r["error"]
    b = queue.claim(factory, "B")
    assert (b.id, b.attempt) == (sub, 2)
    # A was only slow: everything it writes now is refused, and its run is not recorded
    assert not queue.beat(factory, a)
    with pytest.raises(queue.LostClaim):
        queue.finish(factory, a, fake_record(factory))
    assert not queue.fail(factory, a, "late failure")
    assert not queue.release(factory, a, "late release")
    run_id = queue.finish(factory, b, fake_record(factory))
    r = rows(factory)[sub]
    assert (r["status"], r["runs"], r["error"]) == ("FINISHED", 1, None)
    assert queue.run_ids(factory, sub) == [run_id]
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Run)
                        .where(Run.source == "reproduced")) == 1


def test_a_job_that_keeps_killing_workers_fails(sqlite_url):
    factory = open_store(sqlite_url)
    sub = add(factory, "oom")
    later = utcnow() + _dt.timedelta(hours=1)
    for attempt in range(1, queue.MAX_ATTEMPTS + 1):
        assert queue.claim(factory, f"W{attempt}").attempt == attempt
        later += _dt.timedelta(hours=1)
        requeued = queue.requeue_stale(factory, 60, now=later)
        assert requeued == ([sub] if attempt < queue.MAX_ATTEMPTS else [])
    r = rows(factory)[sub]
    assert r["status"] == "FAILED" and "stopped responding 3 times" in r["error"]
    # an operator can put it back
    assert main(["worker", "--requeue", sub, "--db", sqlite_url]) == 0
    r = rows(factory)[sub]
    assert (r["status"], r["attempts"], r["error"]) == ("PENDING", 0, None)
    assert main(["worker", "--requeue", sub, "--db", sqlite_url]) == 2  # not FAILED
    assert main(["worker", "--requeue", "nope", "--db", sqlite_url]) == 2


def test_heartbeat_thread_keeps_the_claim_fresh(sqlite_url):
    factory = open_store(sqlite_url)
    sub = add(factory, "m")
    job = queue.claim(factory, "A")
    with queue.Heartbeat(factory, job, 0.2, log=lambda _: None) as hb:
        time.sleep(1.0)
        assert rows(factory)[sub]["heartbeat"] > job.claimed_at
        assert queue.requeue_stale(factory, 0.6) == []
    assert not hb.lost.is_set()


CLAIMER = textwrap.dedent("""
    import sys
    from imhi_bench.queue import jobs as queue
    from imhi_bench.store.engine import open_store
    factory = open_store(sys.argv[1])
    got = []
    while (job := queue.claim(factory, sys.argv[2])) is not None:
        got.append(job.id)
    print(" ".join(got))
""")


def test_concurrent_claims_from_processes_never_share_a_job(any_url):
    """Six processes race to claim 30 jobs: each job is claimed by exactly one of them."""
    factory = open_store(any_url)
    ids = {add(factory, f"job{i}", seconds=i) for i in range(30)}
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, any_url, f"W{i}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(6)]
    claimed: list[str] = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        claimed += out.split()
    assert sorted(claimed) == sorted(ids)
    state = rows(factory)
    assert {r["status"] for r in state.values()} == {"RUNNING"}
    assert {r["attempts"] for r in state.values()} == {1}


# --------------------------------------------------------------------------- workers


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> list[Path]:
    """Three tiny Llamas with different weights (so three different submissions)."""
    root = tmp_path_factory.mktemp("queue-models")
    return [build_tiny_llama(root / f"llama{i}", seed=i) for i in range(3)]


@pytest.fixture
def env(tmp_path, monkeypatch, tmp_path_factory) -> dict:
    folder = tmp_path / "submissions"
    monkeypatch.setenv("IMHI_SUBMISSIONS_DIR", str(folder))
    return {"dir": folder}


def submit(url: str, model: Path, name: str, *extra: str) -> str:
    assert main(["submit", "--model", str(model), "--name", name, "--db", url, *extra]) == 0
    factory = open_store(url)
    with factory() as s:
        return s.scalar(select(Submission.id).where(Submission.name == name))


def worker_cmd(url: str, folder: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "imhi_bench", "worker", "--db", url, "--submissions-dir",
            str(folder), *extra]


def status_json(url: str, capsys, *args: str) -> list[dict]:
    capsys.readouterr()
    assert main(["status", "--json", "--db", url, *args]) == 0
    return json.loads(capsys.readouterr().out)


def runs_per_submission(url: str) -> dict[str, int]:
    factory = open_store(url)
    with factory() as s:
        return dict(s.execute(select(Run.submission_id, func.count(Run.id))
                              .where(Run.submission_id.is_not(None))
                              .group_by(Run.submission_id)).all())


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_three_submissions_two_workers_draining_at_once(db, request, models, env, capsys):
    url = request.getfixturevalue("sqlite_url" if db == "sqlite" else "pg_url")
    ids = [submit(url, m, f"tiny-{i}") for i, m in enumerate(models)]
    procs = [subprocess.Popen(worker_cmd(url, env["dir"], "--drain", *SMOKE,
                                         "--heartbeat-timeout", "60"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=400)
        assert p.returncode == 0, err[-3000:]
        assert NON_CLINICAL_NOTICE in out and "Traceback" not in err
        outs.append(out)
    # each finished job's score table follows its FINISHED line
    for out in outs:
        lines = out.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("FINISHED "):
                assert lines[i + 1].split()[:3] == ["set", "n", "wF1"]
                assert lines[i + 3].split()[:2] == ["DR", "2"]
                assert lines[i + 5].startswith("Partial run (--limit 2)")
    claimed = [line.split()[1] for out in outs for line in out.splitlines()
               if line.startswith("claimed ")]
    assert sorted(claimed) == sorted(ids)  # each job claimed once, by one of the two
    listing = status_json(url, capsys)
    assert [r["id"] for r in listing] == ids  # oldest first
    for r in listing:
        assert set(r) == {"id", "name", "model", "revision", "status", "runs", "run_id",
                          "weighted_f1", "complete", "coverage", "error", "submitted",
                          "finished", "unreadable"}
        assert r["unreadable"] == []  # every stored value read
        assert (r["complete"], r["coverage"]) == (False, "--limit 2")  # a partial score
        assert (r["status"], r["runs"], r["error"]) == ("FINISHED", 1, None)
        assert r["revision"].startswith("sha256:") and r["finished"].endswith("Z")
    assert runs_per_submission(url) == {i: 1 for i in ids}
    factory = open_store(url)
    with factory() as s:  # and no run was recorded apart from its submission
        assert s.scalar(select(func.count()).select_from(Run)
                        .where(Run.source == "reproduced")) == 3
    # each run is on the leaderboard under its submission's name, with its provenance
    with factory() as s:
        for sub_id in ids:
            run = s.scalars(select(Run).where(Run.submission_id == sub_id)).one()
            assert run.model.name == f"tiny-{ids.index(sub_id)}"
            assert run.model.revision.startswith("sha256:") and run.model.precision == "fp32"
            assert run.provenance["submission"]["id"] == sub_id
            assert run.provenance["limit"] == 2 and run.tasks == ["DR"]
            assert (env["dir"] / "runs" / sub_id / "imhi_results.json").is_file()
            [r] = [r for r in listing if r["id"] == sub_id]
            assert r["run_id"] == run.id
            assert r["weighted_f1"] == pytest.approx(run.mean["weighted_f1"])
    # the table shows them too
    assert main(["status", "--db", url]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:6] == ["id", "name", "status", "runs", "run", "wF1"]
    for r in listing:
        [line] = [t for t in table if t.startswith(r["id"])]
        assert line.split()[3:7] == ["1", str(r["run_id"]), f"{r['weighted_f1']:.2f}",
                                     "partial"]


def test_a_killed_worker_s_job_returns_to_pending_and_another_worker_finishes_it(
        sqlite_url, models, env, capsys):
    url = sqlite_url
    sub = submit(url, models[0], "killed")
    timeout = "4"
    # 48 new tokens a sample: the 9 generations between seeing 3 cached and the kill must
    # take longer than one poll, even on a fast or idle machine
    args = ["--tasks", "imhi_dr", "--limit", "12", "--max-new-tokens", "48", "--bootstrap", "20",
            "--heartbeat-timeout", timeout]
    a = subprocess.Popen(worker_cmd(url, env["dir"], "--once", *args, "--batch-size", "1"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cache = env["dir"] / "cache" / "generations.sqlite"
    deadline = time.time() + 240
    while cached_generations(cache) < 3 and a.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert a.poll() is None, "the worker finished before it could be killed"
    a.send_signal(signal.SIGKILL)  # no cleanup, no release: only the timeout can save it
    a.communicate(timeout=60)
    done_before = cached_generations(cache)
    assert 3 <= done_before < 12
    factory = open_store(url)
    r = rows(factory)[sub]
    assert (r["status"], r["attempts"]) == ("RUNNING", 1)
    assert queue.requeue_stale(factory, float(timeout)) == []  # not before the timeout
    time.sleep(float(timeout) + 0.5)

    # B batches as it likes: the cache key does not depend on the batch size
    b = subprocess.run(worker_cmd(url, env["dir"], "--drain", *args), capture_output=True,
                       text=True, timeout=400)
    assert b.returncode == 0, b.stderr[-3000:]
    assert f"requeued {sub}: no heartbeat for {timeout} s" in b.stdout
    assert f"claimed {sub} (killed, attempt 2)" in b.stdout
    [r] = status_json(url, capsys, sub)
    assert (r["status"], r["runs"]) == ("FINISHED", 1)
    assert runs_per_submission(url) == {sub: 1}
    with factory() as s:
        run = s.scalars(select(Run).where(Run.submission_id == sub)).one()
    # resumed: what the killed worker generated was not generated again
    assert run.provenance["cache"]["reused"] >= done_before
    assert run.provenance["cache"]["reused"] + run.provenance["cache"]["generated"] == 12
    assert run.provenance["submission"]["attempt"] == 2


def test_worker_records_failures_in_one_line_and_goes_on(sqlite_url, models, env, tmp_path,
                                                         capsys):
    url = sqlite_url
    moved = shutil.copytree(models[1], tmp_path / "moving")
    changed = shutil.copytree(models[2], tmp_path / "changing")
    gone = submit(url, moved, "gone")
    edited = submit(url, changed, "edited")
    shutil.rmtree(moved)
    cfg = json.loads((changed / "config.json").read_text())
    cfg["rope_theta"] = 1234.0
    (changed / "config.json").write_text(json.dumps(cfg))
    capsys.readouterr()
    assert main(["worker", "--drain", "--db", url, *SMOKE]) == 0
    out = capsys.readouterr().out
    assert "done: 0 finished, 2 failed" in out
    state = {r["id"]: r for r in status_json(url, capsys)}
    assert state[gone]["status"] == "FAILED" and state[gone]["runs"] == 0
    assert "folder" in state[gone]["error"] and "is gone" in state[gone]["error"]
    assert "changed after it was submitted" in state[edited]["error"]
    assert all("\n" not in r["error"] for r in state.values())
    # the status table shows the reasons
    assert main(["status", "--db", url]) == 0
    table = capsys.readouterr().out
    assert "FAILED" in table and "changed after it was submitted" in table
    assert NON_CLINICAL_NOTICE in table


def test_a_broken_model_fails_its_job_not_the_worker(sqlite_url, models, env, capsys,
                                                     monkeypatch):
    url = sqlite_url
    first = submit(url, models[0], "crashes")
    second = submit(url, models[1], "fine")
    from imhi_bench.runs import evaluate as runner

    real = runner.run_eval
    calls = []

    def flaky(opts, log=print):
        calls.append(opts.name)
        if len(calls) == 1:
            raise RuntimeError("CUDA error: device-side assert triggered\nmore detail")
        return real(opts, log=log)

    monkeypatch.setattr(runner, "run_eval", flaky)
    monkeypatch.delenv("IMHI_DEBUG", raising=False)
    capsys.readouterr()
    assert main(["worker", "--drain", "--db", url, *SMOKE]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    assert (f"FAILED {first}: evaluation crashed: RuntimeError: CUDA error: device-side "
            "assert triggered") in captured.out
    state = {r["id"]: r for r in status_json(url, capsys)}
    assert state[first]["status"] == "FAILED"
    assert state[first]["error"] == ("evaluation crashed: RuntimeError: CUDA error: "
                                     "device-side assert triggered")
    assert (state[second]["status"], state[second]["runs"]) == ("FINISHED", 1)
    assert calls == [first, second]


def test_weights_that_fail_to_load_fail_the_job_in_one_line(sqlite_url, models, env, tmp_path,
                                                             capsys, monkeypatch):
    """Submit does not load the weights: ones that do not fit the config fail the load in
    the worker, which marks the job FAILED with one line and prints no traceback."""
    broken = shutil.copytree(models[0], tmp_path / "broken")
    cfg = json.loads((broken / "config.json").read_text())
    cfg["intermediate_size"] += 8  # the weights no longer fit the architecture
    (broken / "config.json").write_text(json.dumps(cfg))
    sub = submit(sqlite_url, broken, "broken")
    monkeypatch.delenv("IMHI_DEBUG", raising=False)
    capsys.readouterr()
    assert main(["worker", "--once", "--db", sqlite_url, *SMOKE]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    assert "done: 0 finished, 1 failed" in captured.out
    r = rows(open_store(sqlite_url))[sub]
    assert r["status"] == "FAILED" and "\n" not in r["error"]
    # the loader's one line, or the worker's for an exception nothing named
    assert r["error"].startswith(("cannot load model", "evaluation crashed: ")), r["error"]
    assert f"FAILED {sub}: {r['error']}" in captured.out


def test_a_crash_s_traceback_is_shown_only_when_debugging(sqlite_url, models, env, capsys,
                                                          monkeypatch):
    from imhi_bench.runs import evaluate as runner

    def crash(opts, log=print):
        raise ValueError("shape mismatch\nin layer 3")

    monkeypatch.setattr(runner, "run_eval", crash)
    subs = [submit(sqlite_url, models[i], f"crash{i}") for i in range(2)]
    monkeypatch.delenv("IMHI_DEBUG", raising=False)
    capsys.readouterr()
    assert main(["worker", "--once", "--db", sqlite_url]) == 0
    assert "Traceback" not in capsys.readouterr().err
    monkeypatch.setenv("IMHI_DEBUG", "1")
    assert main(["worker", "--once", "--db", sqlite_url]) == 0
    err = capsys.readouterr().err
    assert "Traceback" in err and "ValueError: shape mismatch" in err
    state = rows(open_store(sqlite_url))
    assert [state[s]["error"] for s in subs] == \
        ["evaluation crashed: ValueError: shape mismatch"] * 2


def test_bad_worker_options_claim_nothing(sqlite_url, models, env, tmp_path, capsys):
    """An option that would fail every job (an unknown task, a bad --limit, data missing)
    stops the worker before it claims anything: exit 2, the queue untouched."""
    sub = submit(sqlite_url, models[0], "waiting")
    plain = tmp_path / "plain"
    plain.write_text("x")
    cases = [
        (["--tasks", "imhi_nope"], "unknown task 'imhi_nope'"),
        (["--tasks", " , "], "--tasks is empty"),
        (["--limit", "0"], "--limit must be a positive"),
        (["--limit", "-3"], "--limit must be a positive"),
        (["--max-new-tokens", "0"], "--max-new-tokens must be at least 1"),
        (["--bootstrap", "-1"], "--bootstrap -1"),
        (["--batch-size", "many"], "--batch-size 'many'"),
        (["--poll", "0"], "--poll must be a positive"),
        (["--data-dir", str(tmp_path / "no-data")], "no data for any task"),
        (["--tasks", "imhi_dr", "--data-dir", str(tmp_path / "no-data")], "file is missing"),
        (["--submissions-dir", str(plain / "sub")], "is a file, not a folder"),
    ]
    for mode in ("--once", "--drain"):
        for extra, message in cases:
            capsys.readouterr()
            assert main(["worker", mode, "--db", sqlite_url, *extra]) == 2, extra
            captured = capsys.readouterr()
            [line] = captured.err.strip().splitlines()
            assert line.startswith("imhi-bench: error:") and message in line, (extra, line)
            assert "claimed" not in captured.out
    r = rows(open_store(sqlite_url))[sub]
    assert (r["status"], r["attempts"], r["worker"], r["error"]) == ("PENDING", 0, None, None)
    assert not (env["dir"] / "runs").exists()


def test_a_stopped_worker_gives_its_job_back_at_once(sqlite_url, models, env, monkeypatch):
    url = sqlite_url
    sub = submit(url, models[0], "stopped")
    from imhi_bench.runs import evaluate as runner

    def interrupted(opts, log=print):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_eval", interrupted)
    assert main(["worker", "--once", "--db", url, *SMOKE]) == 130
    r = rows(open_store(url))[sub]
    # a clean stop is not a crash: the claim is taken back from attempts
    assert (r["status"], r["worker"], r["attempts"]) == ("PENDING", None, 0)
    assert "its worker was stopped" in r["error"]


def test_graceful_stops_do_not_count_as_crashes(sqlite_url):
    """SIGTERM, SIGTERM, kill -9: one crash, so the job goes back to PENDING, not FAILED."""
    factory = open_store(sqlite_url)
    sub = add(factory, "stopped-twice")
    later = utcnow() + _dt.timedelta(hours=1)
    for worker_id in ("W1", "W2"):
        job = queue.claim(factory, worker_id)
        assert job.attempt == 1
        assert queue.release(factory, job, "requeued: its worker was stopped")
        assert rows(factory)[sub]["attempts"] == 0
    crashed = queue.claim(factory, "W3")
    assert crashed.attempt == 1
    assert queue.requeue_stale(factory, 60, now=later) == [sub]
    r = rows(factory)[sub]
    assert (r["status"], r["attempts"]) == ("PENDING", 1)
    # two more crashes, with clean stops in between, fail it: crashes are what count
    for n in (2, 3):
        stopped = queue.claim(factory, f"S{n}")
        assert queue.release(factory, stopped, "stopped")
        job = queue.claim(factory, f"C{n}")
        assert job.attempt == n
        later += _dt.timedelta(hours=1)
        assert queue.requeue_stale(factory, 60, now=later) == ([sub] if n < 3 else [])
    r = rows(factory)[sub]
    assert r["status"] == "FAILED" and "stopped responding 3 times" in r["error"]


def test_a_worker_reclaiming_a_job_after_a_release_is_a_new_claim(sqlite_url):
    """After a release the attempt number comes back: the same worker's next claim of the
    job has the same (worker, attempt) but is still a claim of its own (claim time), and a
    slow worker whose claim was lost and given back by another stays fenced out."""
    factory = open_store(sqlite_url)
    sub = add(factory, "m")
    first = queue.claim(factory, "A")
    assert queue.release(factory, first, "stopped")
    time.sleep(0.002)  # distinct claim times (microseconds) on any clock
    second = queue.claim(factory, "A")
    assert (second.worker, second.attempt) == (first.worker, first.attempt)
    assert not queue.beat(factory, first)
    assert not queue.release(factory, first, "late")
    assert queue.beat(factory, second)
    # A goes silent, B takes over and is stopped: attempts is back to A's number
    later = utcnow() + _dt.timedelta(hours=1)
    assert queue.requeue_stale(factory, 60, now=later) == [sub]
    b = queue.claim(factory, "B")
    assert b.attempt == 2
    assert queue.release(factory, b, "stopped")
    assert rows(factory)[sub]["attempts"] == 1 == second.attempt
    assert not queue.beat(factory, second)  # PENDING, not A's
    with pytest.raises(queue.LostClaim):
        queue.finish(factory, second, fake_record(factory))
    c = queue.claim(factory, "C")
    assert not queue.fail(factory, second, "late failure")
    queue.finish(factory, c, fake_record(factory))
    r = rows(factory)[sub]
    assert (r["status"], r["runs"]) == ("FINISHED", 1)


def test_worker_runs_a_hub_submission_pinned_to_a_cached_commit(sqlite_url, models, env,
                                                                capsys):
    from test_submit import COMMIT, fake_snapshot

    url = sqlite_url
    fake_snapshot("imhi-test/queue-llama", COMMIT, models[2])
    sub = submit(url, "imhi-test/queue-llama", "hub-model", "--revision", COMMIT)
    assert main(["worker", "--once", "--db", url, *SMOKE]) == 0
    [r] = status_json(url, capsys, sub)
    assert (r["model"], r["revision"], r["status"], r["runs"]) == \
        ("imhi-test/queue-llama", COMMIT, "FINISHED", 1)
    factory = open_store(url)
    with factory() as s:
        run = s.scalars(select(Run).where(Run.submission_id == sub)).one()
        assert run.provenance["revision"] == COMMIT
        assert (run.model.path, run.model.revision) == ("imhi-test/queue-llama", COMMIT)


def test_once_and_drain_on_an_empty_queue_and_bad_options(sqlite_url, capsys):
    assert main(["worker", "--once", "--db", sqlite_url]) == 0
    assert "nothing pending" in capsys.readouterr().out
    assert main(["worker", "--drain", "--db", sqlite_url, "--heartbeat-timeout", "0"]) == 2
    assert "--heartbeat-timeout must be a positive" in capsys.readouterr().err
    assert main(["worker", "--drain", "--db", sqlite_url, "--limit", "0"]) == 2
    with pytest.raises(SystemExit):
        main(["worker", "--once", "--drain"])
    assert worker.heartbeat_interval(600) == 60 and worker.heartbeat_interval(2) == 0.5


# --------------------------------------------------------------------------- status


def test_status_lists_the_queue_and_one_submission(sqlite_url, capsys):
    factory = open_store(sqlite_url)
    assert main(["status", "--db", sqlite_url]) == 0
    assert "The queue is empty" in capsys.readouterr().out
    assert status_json(sqlite_url, capsys) == []
    a = add(factory, "alpha", seconds=1)
    b = add(factory, "beta", seconds=2)
    queue.claim(factory, "host:1:abc")
    listing = status_json(sqlite_url, capsys)
    assert [(r["id"], r["status"], r["runs"]) for r in listing] == \
        [(a, "RUNNING", 0), (b, "PENDING", 0)]
    assert listing[0]["submitted"] == "2026-01-01T00:00:01Z" and listing[0]["finished"] is None
    assert [r["id"] for r in status_json(sqlite_url, capsys, b)] == [b]
    assert main(["status", a, "--db", sqlite_url]) == 0
    out = capsys.readouterr().out
    assert "on host:1:abc, heartbeat" in out and "/models/alpha" in out
    assert NON_CLINICAL_NOTICE in out
    assert main(["status", "nope", "--db", sqlite_url]) == 2
    assert "no submission 'nope'" in capsys.readouterr().err


def test_status_says_when_a_finished_run_is_partial(sqlite_url, capsys):
    """A --limit run's score is partial: status says so in its table and in --json."""
    factory = open_store(sqlite_url)
    cut, whole = add(factory, "cut", seconds=1), add(factory, "whole", seconds=2)
    for name, n, prov in (("cut", 2, {"limit": 2, "sets": {"DR": {"rows": 405,
                                                                   "complete": False}}}),
                          ("whole", 405, {"sets": {"DR": {"rows": 405, "complete": True}}})):
        job = queue.claim(factory, "A")
        queue.finish(factory, job, lambda session, name=name, n=n, prov=prov: record_run(
            session, model={"name": name}, run={},
            results={"sets": {"DR": {"weighted_f1": 50.0, "n": n}},
                     "mean": {"weighted_f1": 50.0}, "provenance": prov}))
    listing = {r["id"]: r for r in status_json(sqlite_url, capsys)}
    assert (listing[cut]["complete"], listing[cut]["coverage"]) == (False, "--limit 2")
    assert (listing[whole]["complete"], listing[whole]["coverage"]) == (True, None)
    assert main(["status", "--db", sqlite_url]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[5:7] == ["wF1", "scored"]
    [line] = [t for t in table if t.startswith(cut)]
    assert line.split()[5:7] == ["50.00", "partial"] and line.endswith("partial: --limit 2")
    [line] = [t for t in table if t.startswith(whole)]
    assert line.split()[5:7] == ["50.00", "all"] and "partial" not in line


def test_list_submissions_counts_only_finished_runs(sqlite_url):
    factory = open_store(sqlite_url)
    sub = add(factory, "m")
    job = queue.claim(factory, "A")
    queue.finish(factory, job, fake_record(factory))
    with factory.begin() as s:  # a failed run linked to it does not count
        run = Run(model_id=1, source="reproduced", status="failed", submission_id=sub)
        s.add(run)
    assert rows(factory)[sub]["runs"] == 1


def test_error_text_is_one_bounded_line():
    assert queue.one_line("a\nb\r\n  c") == "a b c"
    assert len(queue.one_line("x" * 5000)) == queue.ERROR_MAX


def test_finish_failing_to_record_keeps_the_job_running(sqlite_url):
    factory = open_store(sqlite_url)
    sub = add(factory, "m")
    job = queue.claim(factory, "A")

    def bad_record(session):
        raise ImhiError("results has no per-set scores")

    with pytest.raises(ImhiError):
        queue.finish(factory, job, bad_record)
    r = rows(factory)[sub]
    assert (r["status"], r["runs"]) == ("RUNNING", 0)  # rolled back together
    assert queue.fail(factory, job, "results has no per-set scores")
    assert rows(factory)[sub]["status"] == "FAILED"


CUSTOM_CONFIG = """
import os
from transformers import LlamaConfig
open(os.environ["IMHI_TEST_MARKER"], "a").write("config code ran\\n")

class CustomConfig(LlamaConfig):
    model_type = "imhi_custom_llama"
"""
CUSTOM_MODEL = """
from transformers import LlamaForCausalLM
from .configuration_custom import CustomConfig

class CustomModel(LlamaForCausalLM):
    config_class = CustomConfig
"""


def test_remote_code_runs_only_on_a_trusting_worker(sqlite_url, models, env, tmp_path,
                                                    capsys, monkeypatch):
    marker = tmp_path / "marker"
    monkeypatch.setenv("IMHI_TEST_MARKER", str(marker))
    custom = shutil.copytree(models[0], tmp_path / "custom")
    (custom / "configuration_custom.py").write_text(CUSTOM_CONFIG)
    (custom / "modeling_custom.py").write_text(CUSTOM_MODEL)
    cfg = json.loads((custom / "config.json").read_text())
    cfg["model_type"] = "imhi_custom_llama"
    cfg["auto_map"] = {"AutoConfig": "configuration_custom.CustomConfig",
                       "AutoModelForCausalLM": "modeling_custom.CustomModel"}
    (custom / "config.json").write_text(json.dumps(cfg))
    url = sqlite_url
    sub = submit(url, custom, "custom", "--allow-remote-code")
    assert not marker.exists()  # submitting ran none of it
    capsys.readouterr()
    assert main(["worker", "--drain", "--db", url, *SMOKE]) == 0
    out = capsys.readouterr().out
    assert "1 submission(s) need remote code" in out and "done: 0 finished" in out
    assert rows(open_store(url))[sub]["status"] == "PENDING" and not marker.exists()
    assert main(["worker", "--drain", "--trust-remote-code", "--db", url, *SMOKE]) == 0
    [r] = status_json(url, capsys, sub)
    assert (r["status"], r["runs"]) == ("FINISHED", 1), r["error"]
    assert marker.read_text().startswith("config code ran")
