"""`imhi-bench eval` against a small OpenAI-compatible HTTP server started on 127.0.0.1,
through the real `openai` client: requests, retries on 429/5xx, concurrency, and the key
staying out of every output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_openai import ANSWERS, serving

from imhi_bench.benchmark.sets import NON_CLINICAL_NOTICE
from imhi_bench.cli.main import main
from imhi_bench.tasks.names import STOP_STRINGS

KEY = "sk-test-0123456789-secret"


@pytest.fixture()
def server_factory():
    with serving() as start:
        yield start


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.setenv("IMHI_TEST_KEY", KEY)
    monkeypatch.setenv("IMHI_CACHE_DIR", str(tmp_path / "cache"))


def _everything_written(*roots: Path) -> str:
    return "".join(p.read_bytes().decode("utf-8", "replace")
                   for root in roots for p in root.rglob("*") if p.is_file())


def test_openai_chat_with_retries_concurrency_and_key_hygiene(server_factory, tmp_path,
                                                              capsys, imhi_dir):
    srv = server_factory(failures=[429, 503])
    out = tmp_path / "run"
    rc = main(["eval", "--model", "served-model", "--backend", "openai-chat",
               "--base-url", srv.url, "--api-key-env", "IMHI_TEST_KEY", "--num-concurrent", "4",
               "--tasks", "imhi_dr,imhi_sad", "--limit", "6", "--max-new-tokens", "16",
               "--system-prompt", "Be brief.", "--seed", "3", "--output", str(out)])
    stdout, stderr = capsys.readouterr()
    assert rc == 0, stderr
    report = json.loads((out / "imhi_results.json").read_text())
    assert {n: m["n"] for n, m in report["sets"].items()} == {"DR": 6, "SAD": 6}
    # the server's answers are read and scored: SAD always "work", DR always "yes"
    from imhi_bench.benchmark.data import load_examples
    from imhi_bench.scoring.labels.gold import gold_label

    dr_gold = [gold_label("DR", e.gold) for e in load_examples("DR", data_dir=imhi_dir)[:6]]
    assert report["sets"]["DR"]["accuracy"] == pytest.approx(
        100 * dr_gold.count("yes") / 6, abs=0.01)
    assert report["sets"]["DR"]["unparseable"] == 0 and report["sets"]["SAD"]["unparseable"] == 0
    samples = [json.loads(x) for x in (out / "samples_imhi_dr.jsonl").read_text().splitlines()]
    assert samples[0]["generation"] == ANSWERS["depression"]  # both paragraphs kept
    # what was sent: 2 refused attempts retried, then one request per sample
    assert len(srv.requests) == 12 + 2
    assert srv.max_inflight > 1
    req = srv.requests[-1]
    assert req["path"] == "/v1/chat/completions" and req["model"] == "served-model"
    assert req["max_tokens"] == 16 and req["temperature"] == 0.0 and req["seed"] == 3
    assert req["stop"] == list(STOP_STRINGS)
    assert req["messages"][0] == {"role": "system", "content": "Be brief."}
    assert req["messages"][1]["role"] == "user"
    assert req["messages"][1]["content"].startswith("Consider this post:")
    # the key was sent, and is nowhere in the outputs
    assert srv.auth == {f"Bearer {KEY}"}
    assert KEY not in stdout + stderr
    assert KEY not in _everything_written(out, tmp_path / "cache")
    prov = report["provenance"]
    assert prov["backend"] == "openai-chat" and prov["base_url"] == srv.url
    assert prov["generation"]["chat_template"] is True and prov["versions"]["openai"]
    assert stdout.rstrip().endswith(NON_CLINICAL_NOTICE)

    # the same command again: everything comes from the cache, nothing reaches the server
    before = len(srv.requests)
    rc = main(["eval", "--model", "served-model", "--backend", "openai-chat",
               "--base-url", srv.url, "--api-key-env", "IMHI_TEST_KEY",
               "--tasks", "imhi_dr,imhi_sad", "--limit", "6", "--max-new-tokens", "16",
               "--system-prompt", "Be brief.", "--seed", "3", "--output", str(out)])
    stdout, _ = capsys.readouterr()
    assert rc == 0 and len(srv.requests) == before
    assert "0 generated, 12 reused" in stdout


def test_openai_completions_sends_plain_prompts(server_factory, tmp_path, capsys):
    srv = server_factory()
    out = tmp_path / "run"
    rc = main(["eval", "--model", "base-model", "--backend", "openai-completions",
               "--base-url", srv.url, "--tasks", "imhi_completion_dr,imhi_completion_sad",
               "--limit", "6", "--max-new-tokens", "16", "--output", str(out)])
    _, stderr = capsys.readouterr()
    assert rc == 0, stderr
    report = json.loads((out / "imhi_results.json").read_text())
    assert {n: m["n"] for n, m in report["sets"].items()} == {"DR": 6, "SAD": 6}
    assert report["provenance"]["sets"]["DR"]["format"] == "completion"
    req = srv.requests[0]
    assert req["path"] == "/v1/completions" and req["prompt"].startswith("Post:")
    # no key variable set for a self-hosted server: a placeholder, never a real key
    assert srv.auth == {"Bearer EMPTY"}


def test_server_errors_after_retries_are_one_line(server_factory, tmp_path, capsys):
    srv = server_factory(failures=[500] * 50)
    out = tmp_path / "run"
    rc = main(["eval", "--model", "m", "--backend", "openai-chat", "--base-url", srv.url,
               "--max-retries", "2", "--tasks", "imhi_dr", "--limit", "2", "--output", str(out)])
    _, stderr = capsys.readouterr()
    assert rc == 2
    # (progress bars share stderr; the error is the last line, on its own)
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("imhi-bench: error: ") and "answered HTTP 500 after 3 tries" in last
    assert not out.exists()
    assert len(srv.requests) >= 3  # first try + 2 retries (for at least one sample)
