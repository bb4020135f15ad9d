"""An OpenAI-compatible server that misbehaves (issue 21, items 6, 8 and 15): it never
answers, is stopped with SIGTERM while requests wait, answers with something that is not a
completion, or echoes the key; and credentials in --base-url.  Every case ends in bounded
time with one line (exit 2), and no credential is written or shown anywhere.  The servers
are `fake_openai` on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_openai import serving

from imhi_bench.cli.main import main
from imhi_bench.core.urls import mask_text, mask_url

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-limits-0123456789-secret"
PASSWORD = "PaSsW0rd-7f3a"
QUERY_KEY = "QkEy-51c2"


@pytest.fixture()
def start():
    with serving() as s:
        yield s


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.setenv("IMHI_TEST_KEY", KEY)
    monkeypatch.setenv("IMHI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("IMHI_DB_URL", f"sqlite:///{tmp_path / 'store.sqlite'}")


def _eval(url: str, out: Path, *extra: str) -> list[str]:
    return ["eval", "--model", "served", "--backend", "openai-chat", "--base-url", url,
            "--api-key-env", "IMHI_TEST_KEY", "--tasks", "imhi_dr", "--limit", "2",
            "--max-new-tokens", "8", "--bootstrap", "0", "--output", str(out), *extra]


def _last_line(stderr: str) -> str:
    # progress bars share stderr; the error is its last line
    return stderr.strip().splitlines()[-1]


def test_a_server_that_never_answers_fails_in_bounded_time(start, tmp_path, capsys):
    srv = start(mode="hang")
    out = tmp_path / "run"
    rc = main(_eval(srv.url, out, "--request-timeout", "1", "--max-retries", "1"))
    took = time.monotonic() - srv.arrivals[0]  # from the first request on
    _, err = capsys.readouterr()
    assert rc == 2, err
    assert _last_line(err) == (
        f"imhi-bench: error: {srv.url} did not answer within --request-timeout 1 s (2 tries): "
        "check the server's logs, or raise --request-timeout for a slow model")
    assert took < 8  # 2 tries of 1 s, the client's backoff between them, and the exit
    assert len(srv.requests) >= 2  # the first sample's request, tried twice
    assert not out.exists()


@pytest.mark.parametrize("value, reason", [
    (["--request-timeout", "0"], "--request-timeout 0.0: give the seconds"),
    (["--request-timeout", "nan"], "--request-timeout nan: give the seconds"),
    (["--max-retries", "-1"], "--max-retries -1: give how often"),
])
def test_bad_request_limits_are_refused_before_anything_is_sent(value, reason, start, tmp_path,
                                                               capsys):
    srv = start()
    rc = main(_eval(srv.url, tmp_path / "run", *value))
    _, err = capsys.readouterr()
    assert rc == 2 and err.startswith(f"imhi-bench: error: {reason}") and err.count("\n") == 1
    assert srv.requests == [] and not (tmp_path / "run").exists()


def test_a_signal_stops_a_waiting_pool_within_seconds_keeping_the_answers(start, tmp_path):
    """SIGTERM while two requests wait on a server that stopped answering (after two
    answers): the run ends at once (not after --request-timeout), and the two answers stay
    in the generation cache."""
    srv = start(mode="hang", answer_first=2)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("IMHI_DEBUG", None)
    argv = _eval(srv.url, tmp_path / "run", "--limit", "4", "--num-concurrent", "2",
                 "--request-timeout", "120", "--max-retries", "3")
    proc = subprocess.Popen([sys.executable, "-m", "imhi_bench", *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while len(srv.requests) < 4 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert len(srv.requests) == 4, proc.poll()
        time.sleep(0.5)  # both hang now; the two answers reached the cache
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=40)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read().decode()
    assert rc == 128 + signal.SIGTERM, err
    assert _last_line(err) == "imhi-bench: interrupted (SIGTERM)"
    # far below the 120 s a request would wait: the signal, not a timeout, ended it (the
    # margin is for a loaded machine; library shutdown alone takes about 2.5 s)
    assert took < 30
    with sqlite3.connect(tmp_path / "cache" / "generations.sqlite") as db:
        assert db.execute("SELECT count(*) FROM generations").fetchone()[0] == 2
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("mode, what", [
    ("garbage", "(not JSON: Expecting value: line 1 column 1 (char 0))"),
    ("html", "(no choices in '<html><body><h1>Welcome to nginx!</h1></body></html>')"),
    ("no_choices", "(an empty choices list)"),
])
def test_an_answer_that_is_not_a_completion_is_one_line(mode, what, start, tmp_path, capsys):
    srv = start(mode=mode)
    out = tmp_path / "run"
    rc = main(_eval(srv.url, out, "--max-retries", "0"))
    _, err = capsys.readouterr()
    assert rc == 2, err
    assert _last_line(err) == (
        f"imhi-bench: error: {srv.url} answered with something that is not an OpenAI chat "
        f"completion {what}: check that --base-url is an OpenAI-compatible server's /v1 "
        "endpoint")
    assert not out.exists()


def _everything(*roots: Path) -> bytes:
    return b"".join(p.read_bytes() for root in roots for p in sorted(root.rglob("*"))
                    if p.is_file())


def test_credentials_in_the_base_url_are_written_and_shown_masked(start, tmp_path, capsys):
    srv = start()
    port = srv.server_address[1]
    url = f"http://user:{PASSWORD}@127.0.0.1:{port}/v1?api_key={QUERY_KEY}"
    out = tmp_path / "run"
    rc = main(_eval(url, out))
    stdout, stderr = capsys.readouterr()
    assert rc == 0, stderr
    assert len(srv.requests) == 2  # the URL, credentials and all, was used as given
    shown = f"http://user:***@127.0.0.1:{port}/v1?api_key=***"
    report = json.loads((out / "imhi_results.json").read_text())
    assert report["provenance"]["base_url"] == shown
    lm_eval = json.loads((out / "lm_eval_results.json").read_text())
    assert lm_eval["config"]["model_args"]["base_url"] == shown
    # the run folder, the generation cache (its key and its list of models) and the store
    # (runs, provenance the model page shows) hold neither secret
    written = _everything(out, tmp_path / "cache") + b"".join(
        p.read_bytes() for p in tmp_path.glob("store.sqlite*"))  # with its WAL
    for secret in (PASSWORD, QUERY_KEY, KEY):
        assert secret.encode() not in written and secret not in stdout + stderr
    with sqlite3.connect(tmp_path / "store.sqlite") as db:
        (prov,) = db.execute("SELECT provenance FROM runs").fetchone()
    assert json.loads(prov)["base_url"] == shown


def test_a_server_error_echoing_the_key_is_printed_masked(start, tmp_path, capsys):
    srv = start(mode="echo")
    port = srv.server_address[1]
    url = f"http://127.0.0.1:{port}/v1"
    rc = main(_eval(url, tmp_path / "run", "--max-retries", "0"))
    _, err = capsys.readouterr()
    assert rc == 2
    line = _last_line(err)
    assert line.startswith(f"imhi-bench: error: {url} answered HTTP 400 after 1 try (Error code: "
                           "400 - Invalid key Bearer *** for http://127.0.0.1:")
    assert "/chat/completions?api_key=***): check --model" in line
    assert KEY not in err and "ECHOED" not in err


def test_one_masking_for_store_urls_and_api_urls():
    from imhi_bench.store.engine import display_url

    for url, masked in [
        ("postgresql://me:s3cret@db.example/imhi", "postgresql://me:***@db.example/imhi"),
        ("postgresql://me@db.example/imhi", "postgresql://me@db.example/imhi"),
        ("http://u:p@ss/w@h:8000/v1", "http://u:***@h:8000/v1"),
        ("https://h/v1?api-version=2&key=K&token=T", "https://h/v1?api-version=2&key=***&token=***"),
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
    ]:
        assert mask_url(url) == masked and display_url(url) == masked
    assert mask_text("bad key sk-123 at http://a:b@h/v1 (see x).", ["sk-123"]) == \
        "bad key *** at http://a:***@h/v1 (see x)."


def test_a_full_disk_is_one_line_keeping_what_was_cached(tmp_path):
    """The generation cache and the run folder on a disk that fills up: one line naming the
    file and the fix, what was stored before kept, no half-written run folder."""
    import errno

    from imhi_bench.core.errors import ImhiError
    from imhi_bench.models.generation_cache import GenerationCache
    from imhi_bench.runs import folder

    cache = GenerationCache(tmp_path / "cache" / "generations.sqlite", {"model": "m"})
    cache.put("k0", "kept")
    pages = cache._db.execute("PRAGMA page_count").fetchone()[0]
    cache._db.execute(f"PRAGMA max_page_count={pages}")  # SQLite's own "disk is full"
    with pytest.raises(ImhiError) as e:
        cache.put("k1", "x" * 100_000)
    assert str(e.value) == (
        f"cannot write to the generation cache {cache.path} (database or disk is full): free "
        "space there, or pass --cache-dir on another disk (what it holds is kept: 1 generated "
        "in this run)")
    assert cache.get_many(["k0", "k1"]) == {"k0": "kept"}
    cache.close()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    dest = tmp_path / "runs" / "r"
    mp = pytest.MonkeyPatch()
    mp.setattr(folder, "atomic_write_json", full)
    try:
        with pytest.raises(ImhiError) as e:
            folder.write_run_folder(dest, lm_eval_results={}, records={}, report={})
    finally:
        mp.undo()
    assert str(e.value).startswith(f"cannot write the run folder {dest} (No space left on "
                                   "device): free space there, or pass --output")
    assert list((tmp_path / "runs").iterdir()) == []


def test_cache_info_masks_a_password_an_older_cache_holds(tmp_path, capsys):
    from imhi_bench.models.generation_cache import GenerationCache

    old = {"backend": "openai-chat", "model": "m",
           "base_url": f"http://user:{PASSWORD}@127.0.0.1:9/v1"}  # as written before the fix
    cache = GenerationCache(tmp_path / "c" / "generations.sqlite", old)
    cache.put("k", "text")
    cache.close()
    assert main(["cache", "info", "--json", "--cache-dir", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert PASSWORD not in out
    assert json.loads(out)["models"][0]["identity"]["base_url"] == \
        "http://user:***@127.0.0.1:9/v1"


def test_api_baselines_take_the_same_limits(tmp_path):
    from imhi_bench.baselines.generative import eval_options
    from imhi_bench.baselines.spec import load_spec
    from imhi_bench.core.errors import ImhiError

    spec_file = "chatgpt-zeroshot"  # a shipped spec, by name
    spec = load_spec(spec_file, ["request_timeout=5", "max_retries=0"])
    model = eval_options(spec, output=tmp_path / "r").model
    assert (model.timeout, model.max_retries) == (5.0, 0)
    default = eval_options(load_spec(spec_file), output=tmp_path / "r").model
    assert (default.timeout, default.max_retries) == (120.0, 3)
    with pytest.raises(ImhiError, match=r"^spec key request_timeout 0\.0: give the seconds"):
        load_spec(spec_file, ["request_timeout=0"])
    with pytest.raises(ImhiError, match=r"^spec key max_retries 99: give how often"):
        load_spec(spec_file, ["max_retries=99"])
