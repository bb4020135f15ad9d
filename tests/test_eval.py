"""`imhi-bench eval` end to end on tiny local models (Llama, BART, a LoRA adapter), plain
`lm_eval` on the task YAMLs, resuming an interrupted run, and bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny_models import build_tiny_bart, build_tiny_llama, build_tiny_lora, cached_generations

from imhi_bench.benchmark.sets import NON_CLINICAL_NOTICE
from imhi_bench.cli.main import main
from imhi_bench.core.errors import ImhiError

ROOT = Path(__file__).resolve().parents[1]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
BASE = ["--tasks", "imhi_dr,imhi_sad", "--limit", "6", "--max-new-tokens", "16",
        "--bootstrap", "200"]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    # never read or write the user's generation cache
    monkeypatch.setenv("IMHI_CACHE_DIR", str(tmp_path_factory.mktemp("gen-cache")))


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), hidden_size=64, layers=2)


@pytest.fixture(scope="module")
def tiny_chat_llama(tmp_path_factory):
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-chat-llama"),
                            chat_template=CHAT_TEMPLATE)


@pytest.fixture(scope="module")
def tiny_bart(tmp_path_factory):
    return build_tiny_bart(tmp_path_factory.mktemp("tiny-bart"))


@pytest.fixture(scope="module")
def tiny_lora(tmp_path_factory, tiny_llama):
    return build_tiny_lora(tiny_llama, tmp_path_factory.mktemp("tiny-lora"))


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    rc = main(["eval", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def load_run(run_dir: Path) -> tuple[dict, dict[str, list[dict]]]:
    report = json.loads((run_dir / "imhi_results.json").read_text())
    samples = {
        p.stem.removeprefix("samples_"): [json.loads(x) for x in p.read_text().splitlines()]
        for p in sorted(run_dir.glob("samples_*.jsonl"))
    }
    return report, samples


@pytest.fixture(scope="module")
def llama_run(tiny_llama, tmp_path_factory):
    """One plain run of the tiny Llama on DR and SAD, shared by several tests."""
    out = tmp_path_factory.mktemp("runs") / "llama"
    cache = tmp_path_factory.mktemp("llama-cache")
    rc = main(["eval", "--model", str(tiny_llama), *BASE, "--output", str(out),
               "--cache-dir", str(cache)])
    assert rc == 0
    return out


def test_eval_tiny_llama_writes_the_run_folder(llama_run, tiny_llama, imhi_dir):
    report, samples = load_run(llama_run)
    assert {n: m["n"] for n, m in report["sets"].items()} == {"DR": 6, "SAD": 6}
    assert report["mean"]["sets"] == 2 and report["mean"]["n"] == 12
    assert report["notice"] == NON_CLINICAL_NOTICE
    for m in report["sets"].values():
        assert set(m) >= {"weighted_f1", "weighted_f1_ci", "accuracy", "macro_f1",
                          "unparseable", "n", "labeler"}
    prov = report["provenance"]
    assert prov["backend"] == "hf" and prov["model"] == str(tiny_llama)
    assert prov["revision"] is None and prov["seed"] == 0 and prov["limit"] == 6
    assert len(prov["model_config_sha256"]) == 64
    assert "git_commit" in prov and prov["imhi_bench_version"]
    assert set(prov["versions"]) >= {"lm_eval", "transformers", "torch"}
    assert all(prov["versions"][k] for k in ("lm_eval", "transformers", "torch"))
    assert prov["tasks"]["imhi_dr"]["version"] == 2.0
    gen = prov["generation"]
    assert gen["max_new_tokens"] == 16 and gen["do_sample"] is False
    assert "\n\n" not in gen["until"] and gen["chat_template"] is False
    from imhi_bench.core.fileio import sha256_file

    dr = prov["sets"]["DR"]
    assert dr["data_sha256"] == sha256_file(imhi_dir / "test_data/test_instruction/DR.csv")
    assert dr["rows"] == 405 and dr["complete"] is False and dr["format"] == "instruction"
    assert prov["cache"]["generated"] == 12 and prov["cache"]["reused"] == 0
    assert 0 < prov["timing"]["generate_seconds"] <= prov["timing"]["wall_seconds"]
    # per-sample JSONL: lm-eval's record plus what a reader needs
    assert sorted(samples) == ["imhi_dr", "imhi_sad"]
    for rows in samples.values():
        assert [r["doc_id"] for r in rows] == list(range(6))
        for r in rows:
            assert {"prompt", "generation", "gold", "gold_label", "label", "correct",
                    "doc", "arguments", "filtered_resps"} <= set(r)
            assert r["prompt"] == r["doc"]["query"]  # no chat template on this model
            assert r["generation"] == r["filtered_resps"][0]
            assert r["correct"] == (r["label"] == r["gold_label"])
    acc = 100 * sum(r["correct"] for r in samples["imhi_dr"]) / 6
    assert report["sets"]["DR"]["accuracy"] == pytest.approx(acc, abs=0.01)
    lm = json.loads((llama_run / "lm_eval_results.json").read_text())
    assert set(lm["results"]) == {"imhi_dr", "imhi_sad"}
    assert lm["results"]["imhi_dr"]["weighted_f1,none"] == report["sets"]["DR"]["weighted_f1"]
    assert lm["results"]["imhi_dr"]["unparseable,none"] == report["sets"]["DR"]["unparseable"]


def test_score_rescores_a_run_folder(llama_run, tmp_path, capsys):
    out = tmp_path / "rescored.json"
    assert main(["score", "--predictions", str(llama_run), "--json", str(out),
                 "--bootstrap", "200"]) == 0
    capsys.readouterr()
    again = json.loads(out.read_text())
    report, _ = load_run(llama_run)
    assert again["sets"] == report["sets"] and again["mean"] == report["mean"]
    assert again["provenance"]["sets"]["DR"]["format"] == "instruction"


def test_eval_prints_table_and_notice(tiny_llama, tmp_path, capsys):
    rc, out, err = run_cli(["--model", str(tiny_llama), "--tasks", "DR", "--limit", "2",
                            "--max-new-tokens", "4", "--output", str(tmp_path / "r")], capsys)
    assert rc == 0, err
    assert "2 generated, 0 reused" in out
    assert "DR " in out and out.rstrip().endswith(NON_CLINICAL_NOTICE)
    assert json.loads((tmp_path / "r" / "imhi_results.json").read_text())["sets"]["DR"]["n"] == 2


def test_eval_seq2seq_bart(tiny_bart, tmp_path, capsys):
    out = tmp_path / "bart"
    rc, _, err = run_cli(["--model", str(tiny_bart), "--backend", "hf-seq2seq", *BASE,
                          "--output", str(out)], capsys)
    assert rc == 0, err
    report, samples = load_run(out)
    assert {n: m["n"] for n, m in report["sets"].items()} == {"DR": 6, "SAD": 6}
    assert report["provenance"]["backend"] == "hf-seq2seq"
    assert all(isinstance(r["generation"], str) for r in samples["imhi_dr"])


def test_eval_lora_adapter_changes_generations(tiny_llama, tiny_lora, llama_run, tmp_path,
                                               capsys):
    out = tmp_path / "lora"
    rc, _, err = run_cli(["--model", str(tiny_llama), "--adapter", str(tiny_lora), *BASE,
                          "--output", str(out)], capsys)
    assert rc == 0, err
    report, samples = load_run(out)
    assert {n: m["n"] for n, m in report["sets"].items()} == {"DR": 6, "SAD": 6}
    prov = report["provenance"]
    assert prov["adapter"] == str(tiny_lora.resolve())
    assert len(prov["adapter_config_sha256"]) == 64 and prov["versions"]["peft"]
    _, base = load_run(llama_run)
    # the adapter was applied (its random LoRA weights change the greedy output), and
    # its cache entries did not collide with the base model's
    assert [r["generation"] for r in samples["imhi_dr"]] != \
        [r["generation"] for r in base["imhi_dr"]]
    assert prov["cache"]["reused"] == 0


def test_chat_template_and_system_prompt(tiny_chat_llama, tmp_path, capsys):
    """A model whose tokenizer has a chat template gets the raw released query by default,
    as IMHI.py sends it (the default protocol); --chat-template is another protocol."""
    rc, _, err = run_cli(["--model", str(tiny_chat_llama), "--tasks", "imhi_dr", "--limit", "2",
                          "--max-new-tokens", "4", "--output", str(tmp_path / "plain")], capsys)
    assert rc == 0, err
    plain, samples = load_run(tmp_path / "plain")
    assert samples["imhi_dr"][0]["prompt"] == samples["imhi_dr"][0]["doc"]["query"]
    assert plain["provenance"]["generation"]["chat_template"] is False
    assert plain["provenance"]["protocol"]["chat_template"] is False

    out = tmp_path / "chat"
    rc, _, err = run_cli(["--model", str(tiny_chat_llama), "--tasks", "imhi_dr", "--limit", "2",
                          "--max-new-tokens", "4", "--chat-template",
                          "--system-prompt", "You are careful.", "--output", str(out)], capsys)
    assert rc == 0, err
    report, samples = load_run(out)
    prompt = samples["imhi_dr"][0]["prompt"]
    assert prompt.startswith("<|system|>You are careful.\n<|user|>Consider this post:")
    assert prompt.endswith("<|assistant|>")
    assert report["provenance"]["generation"]["chat_template"] is True
    assert report["provenance"]["generation"]["system_prompt"] == "You are careful."
    chat, raw = report["provenance"]["protocol"], plain["provenance"]["protocol"]
    assert chat["id"] != raw["id"]
    assert "chat template" in chat["name"] and "system prompt" in chat["name"]


def test_batched_generation_equals_one_at_a_time(tiny_llama, tiny_bart, imhi_dir):
    """Length-sorted, padded batches give the generations of unbatched runs (left padding
    for Llama, right padding for BART's learned positions)."""
    from lm_eval.api.instance import Instance

    from imhi_bench.benchmark.data import load_examples
    from imhi_bench.models import hf as hf_lm
    from imhi_bench.tasks.names import STOP_STRINGS

    prompts = [e.query for e in load_examples("SAD", data_dir=imhi_dir)[:5]]
    prompts += [e.query for e in load_examples("DR", data_dir=imhi_dir)[:3]]
    gk = {"until": list(STOP_STRINGS), "do_sample": False, "temperature": 0.0,
          "max_gen_toks": 8}
    reqs = [Instance("generate_until", {}, (p, dict(gk)), i) for i, p in enumerate(prompts)]
    for path, backend in ((tiny_llama, "causal"), (tiny_bart, "seq2seq")):
        one = hf_lm.ImhiHFLM(pretrained=str(path), backend=backend, batch_size=1, device="cpu")
        auto = hf_lm.ImhiHFLM(pretrained=str(path), backend=backend, batch_size="auto",
                              device="cpu")
        a = one.generate_until(reqs, disable_tqdm=True)
        b = auto.generate_until(reqs, disable_tqdm=True)
        assert a == b, backend
        assert max(auto.batch_sizes_used) > 1 and set(one.batch_sizes_used) == {1}


def test_auto_batches_follow_the_token_budget():
    from imhi_bench.models.hf import ImhiHFLM

    lm = ImhiHFLM.__new__(ImhiHFLM)  # only the batching policy, no model
    lm.batch_size_per_gpu, lm.max_batch_size, lm.max_batch_tokens = "auto", 64, 1000
    lengths = [900, 400, 300, 100, 100, 100, 100, 10]
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches = lm._batches(order, lengths, max_new=100)
    assert batches == [[0], [1, 2], [3, 4, 5, 6, 7]]
    lm.batch_size_per_gpu = 3
    assert lm._batches(order, lengths, 100) == [[0, 1, 2], [3, 4, 5], [6, 7]]


def reproduced_runs(url: str) -> int:
    from imhi_bench.store.engine import open_store
    from imhi_bench.store.tables import Run

    if not (Path(url.removeprefix("sqlite:///"))).exists():
        return 0
    with open_store(url)() as session:
        return session.query(Run).filter(Run.source == "reproduced").count()


def test_eval_records_into_the_store_with_quality_and_labeler(tiny_llama, tmp_path, capsys):
    """eval records one run (with its samples) in the store unless --no-db; --quality and
    --labeler reach the report, the samples and the store."""
    from tiny_models import build_tiny_bert_classifier

    from imhi_bench.store.engine import open_store
    from imhi_bench.store.tables import Run, Sample

    labeler = tmp_path / "labeler"
    build_tiny_bert_classifier(labeler / "DR", 2, id2label={0: "no", 1: "yes"})
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    rc, out, err = run_cli(["--model", str(tiny_llama), *BASE, "--output", str(tmp_path / "r"),
                            "--db", url, "--quality", "rouge", "--labeler", str(labeler),
                            "--name", "tiny llama"], capsys)
    assert rc == 0, err
    assert "Recorded as run" in out and out.rstrip().endswith(NON_CLINICAL_NOTICE)
    report, samples = load_run(tmp_path / "r")
    assert report["sets"]["DR"]["labeler"].startswith("classifier:")
    assert report["sets"]["SAD"]["labeler"] == "rules"
    assert "rougeL" in report["sets"]["SAD"] and "consistency" in report["sets"]["DR"]
    assert all("rougeL" in rec for recs in samples.values() for rec in recs)
    assert reproduced_runs(url) == 1
    with open_store(url)() as session:
        run = session.query(Run).filter(Run.source == "reproduced").one()
        assert run.model.name == "tiny llama" and run.backend == "hf"
        assert run.format == "instruction"
        assert session.query(Sample).filter(Sample.run_id == run.id).count() == 12
    rc, _, err = run_cli(["--model", str(tiny_llama), *BASE, "--output", str(tmp_path / "r2"),
                          "--db", url, "--no-db"], capsys)
    assert rc == 0, err
    assert reproduced_runs(url) == 1


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_run_resumes_without_regenerating(sig, tiny_llama, tmp_path, imhi_dir):
    """Ctrl-C (or SIGTERM, all a background job can be sent) part-way through, then the
    same command: every generation made before the interruption is reused, only the rest is
    generated."""
    cache = tmp_path / "cache"
    out = tmp_path / "run"
    args = [sys.executable, "-m", "imhi_bench", "eval", "--model", str(tiny_llama),
            "--tasks", "imhi_dr,imhi_sad", "--limit", "15", "--max-new-tokens", "8",
            "--batch-size", "1", "--cache-dir", str(cache), "--output", str(out),
            "--bootstrap", "100"]
    db_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    env = dict(os.environ, IMHI_DATA_DIR=str(imhi_dir), IMHI_DB_URL=db_url)
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    db = cache / "generations.sqlite"

    def cached() -> int:
        return cached_generations(db)

    deadline = time.time() + 240
    while cached() < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (130 if sig == signal.SIGINT else 143), err
    assert "interrupted" in err and "Traceback" not in err
    assert not out.exists()  # no partial results
    assert reproduced_runs(db_url) == 0  # and no partial run in the store
    done = cached()
    assert 3 <= done < 30

    from imhi_bench.models.hf import ImhiHFLM
    from imhi_bench.models.options import ModelOptions
    from imhi_bench.runs.evaluate import EvalOptions, run_eval

    calls = []
    original = ImhiHFLM._generate_batch

    def counting(self, seqs, *a, **kw):
        calls.append(len(seqs))
        return original(self, seqs, *a, **kw)

    ImhiHFLM._generate_batch = counting
    try:
        run = run_eval(EvalOptions(model=ModelOptions(model=str(tiny_llama)),
                                   tasks="imhi_dr,imhi_sad", limit=15, max_new_tokens=8,
                                   cache_dir=str(cache), output=str(out), bootstrap=100,
                                   data_dir=str(imhi_dir)), log=lambda _: None)
    finally:
        ImhiHFLM._generate_batch = original
    # the cache key does not depend on the batch size: the re-run batches as it likes
    assert run.reused == done
    assert run.generated == 30 - done == sum(calls)
    report = json.loads((out / "imhi_results.json").read_text())
    assert {n: m["n"] for n, m in report["sets"].items()} == {"DR": 15, "SAD": 15}
    assert report["provenance"]["cache"] == {"path": str(db), "reused": done,
                                             "generated": 30 - done}
    # a third run generates nothing
    rerun = run_eval(EvalOptions(model=ModelOptions(model=str(tiny_llama)),
                                 tasks="imhi_dr,imhi_sad", limit=15, max_new_tokens=8,
                                 cache_dir=str(cache), output=str(out), bootstrap=100,
                                 data_dir=str(imhi_dir)), log=lambda _: None)
    assert (rerun.reused, rerun.generated) == (30, 0)
    assert rerun.report["sets"] == report["sets"]


def test_plain_lm_eval_runs_an_imhi_task(tiny_llama, tmp_path, imhi_dir):
    """`lm_eval --include_path tasks_yaml` on its own, with only IMHI_DATA_DIR set."""
    lm_eval = Path(sys.executable).with_name("lm_eval")
    # bart_score off: the default BART (bart-large-cnn) is not there offline
    env = dict(os.environ, IMHI_DATA_DIR=str(imhi_dir), IMHI_BART_MODEL="none")
    r = subprocess.run(
        [str(lm_eval), "--model", "hf", "--model_args", f"pretrained={tiny_llama}",
         "--device", "cpu", "--include_path", "tasks_yaml", "--tasks", "imhi_tsid",
         "--limit", "3", "--gen_kwargs", "max_gen_toks=8", "--output_path", str(tmp_path),
         "--log_samples"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "imhi_tsid" in r.stdout and "weighted_f1" in r.stdout
    results = next(tmp_path.rglob("results_*.json"))
    res = json.loads(results.read_text())["results"]["imhi_tsid"]
    assert res["sample_len"] == 3 and res["unparseable,none"] <= 3
    # and `imhi-bench score` reads lm-eval's own samples output
    from imhi_bench.runs.folder import load_predictions

    preds = load_predictions(tmp_path)
    assert list(preds) == ["t-sid"] and len(preds["t-sid"].rows) == 3


BAD_INPUTS = [
    (["--model", "{tmp}/missing"], "no such folder"),
    (["--model", "{tmp}/noconfig"], "has no config.json"),
    (["--model", "{llama}", "--tasks", "imhi_nope"], "unknown task 'imhi_nope'"),
    (["--model", "{lora}"], "is a PEFT adapter, not a model: pass its base model"),
    (["--model", "{llama}", "--adapter", "{tmp}/noconfig"], "not a PEFT adapter folder"),
    (["--model", "{llama}", "--tasks", "imhi_swmh"], "swmh instruction file is missing: put it at"),
    (["--model", "{llama}", "--data-dir", "{tmp}/nodata", "--tasks", "imhi_dr"],
     "DR instruction file is missing: put it at {tmp}/nodata/test_data"),
    (["--model", "m", "--backend", "openai-chat", "--base-url", "http://127.0.0.1:{port}/v1"],
     "cannot reach the API at http://127.0.0.1:{port}/v1"),
    (["--model", "{llama}", "--tasks", "imhi_dr,imhi_completion_dr"], "DR is selected twice"),
    (["--model", "{llama}", "--limit", "0"], "--limit must be a positive"),
]


@pytest.mark.parametrize("args,message", BAD_INPUTS,
                         ids=[m.split(":")[0][:30] for _, m in BAD_INPUTS])
def test_bad_input_is_one_line_and_no_results(args, message, tiny_llama, tiny_lora, tmp_path,
                                              capsys):
    import socket

    (tmp_path / "noconfig").mkdir()
    (tmp_path / "noconfig" / "weights.bin").write_bytes(b"x")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    fill = {"tmp": str(tmp_path), "llama": str(tiny_llama), "lora": str(tiny_lora),
            "port": str(port)}
    out = tmp_path / "out"
    t0 = time.time()
    rc, stdout, err = run_cli([a.format(**fill) for a in args] + ["--output", str(out)], capsys)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("imhi-bench: error: "), err
    assert message.format(**fill) in lines[0]
    assert not out.exists()
    assert time.time() - t0 < 30  # checked before any model loads


def test_output_must_be_new_or_a_run_folder(tiny_llama, tmp_path, capsys):
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep me")
    rc, _, err = run_cli(["--model", str(tiny_llama), "--tasks", "DR", "--limit", "1",
                          "--output", str(other)], capsys)
    assert rc == 2 and "not an imhi-bench run folder" in err
    assert (other / "mine.txt").read_text() == "keep me"


def test_task_selection(imhi_dir):
    from imhi_bench.runs.selection import select_tasks
    from imhi_bench.tasks.names import group_tasks

    sel = select_tasks("imhi", "hf", str(imhi_dir))
    assert "imhi_swmh" not in sel.tasks and "imhi_clp" not in sel.tasks
    assert len(sel.tasks) == 8 and sel.specs == sel.tasks  # incomplete group: as tasks
    assert len(sel.notes) == 2 and all("put it at" in n for n in sel.notes)
    # seq2seq defaults to the completion format, for groups and bare set names alike
    assert select_tasks(None, "hf-seq2seq", str(imhi_dir)).tasks[0] == "imhi_completion_cams"
    assert select_tasks("DR,t-sid", "hf-seq2seq", str(imhi_dir)).tasks == \
        ["imhi_completion_dr", "imhi_completion_tsid"]
    # complete group goes to lm-eval as the group (its aggregate lands in lm-eval's JSON)
    assert select_tasks("imhi_unseen", "hf", str(imhi_dir)).specs == ["imhi_unseen"]
    # overlapping selections run each task once
    sel = select_tasks("imhi_unseen,imhi_dr,imhi_cams", "hf", str(imhi_dir))
    assert sel.tasks == group_tasks("imhi_unseen") + ["imhi_dr"]
    assert sel.specs == sel.tasks
    with pytest.raises(ImhiError, match="--tasks is empty"):
        select_tasks(" , ", "hf", str(imhi_dir))


def test_gpu_token_budget_and_out_of_memory_halving(monkeypatch):
    """The CUDA paths, without a GPU: the budget follows free memory and the KV-cache size
    per token, and an out-of-memory batch is split in halves and retried."""
    import types

    import torch

    from imhi_bench.models.hf import GPU_MEMORY_SHARE, ImhiHFLM

    lm = ImhiHFLM.__new__(ImhiHFLM)
    lm.max_batch_tokens = None
    lm._device = torch.device("cuda")
    lm._config = types.SimpleNamespace(num_hidden_layers=32, hidden_size=4096,
                                       num_attention_heads=32, num_key_value_heads=8,
                                       intermediate_size=14336)
    lm._model = types.SimpleNamespace(dtype=torch.bfloat16)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (40 * 2**30, 80 * 2**30))
    per_token = (2 * 32 * 8 * 128 + 3 * 14336 + 4 * 4096) * 2
    assert lm._token_budget() == int(40 * 2**30 * GPU_MEMORY_SHARE / per_token)

    tried = []

    def fake_batch(seqs, max_new, stop, kwargs):
        tried.append(len(seqs))
        if len(seqs) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return [f"g{s[0]}" for s in seqs]

    lm._generate_batch = fake_batch
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    out = lm._generate_split([[i] for i in range(8)], 4, [], {})
    assert out == [f"g{i}" for i in range(8)]  # order kept
    assert tried[:3] == [8, 4, 2]
    assert lm.max_batch_tokens is not None  # later batches use a smaller budget


def test_cache_info_and_prune_after_a_real_eval(tiny_llama, tmp_path, capsys):
    """eval's cache names the model for `cache info`; after `cache prune --model` the same
    eval generates everything again instead of reusing."""
    cache = tmp_path / "cache"
    args = ["eval", "--model", str(tiny_llama), "--tasks", "imhi_dr", "--limit", "3",
            "--max-new-tokens", "4", "--bootstrap", "50", "--cache-dir", str(cache), "--no-db"]
    assert main([*args, "--output", str(tmp_path / "a")]) == 0
    assert "3 generated, 0 reused" in capsys.readouterr().out
    assert main(["cache", "info", "--cache-dir", str(cache), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert [(m["identity"]["model"], m["generations"]) for m in info["models"]] == [
        (str(tiny_llama), 3)]
    assert main(["cache", "prune", "--cache-dir", str(cache), "--model", str(tiny_llama)]) == 0
    assert "removed 3 generations" in capsys.readouterr().out
    assert main([*args, "--output", str(tmp_path / "b")]) == 0
    assert "3 generated, 0 reused" in capsys.readouterr().out
