"""Few-shot IMHI tasks: `imhi-bench eval --num-fewshot K` and `lm_eval --num_fewshot K`.

Checked from the prompts the run folder records: K demonstrations (query + gold response of
the pool, in order), none a test post, the target post last; the same demonstrations across
runs, batch sizes and --limit; class balance; the pool's fallback order; the small-pool note.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from tiny_models import build_tiny_llama

from imhi_bench.benchmark import data
from imhi_bench.benchmark.data import demonstration_pool, load_examples, post_key, split_post
from imhi_bench.benchmark.sets import FORMATS, SETS
from imhi_bench.cli.main import main
from imhi_bench.scoring.labels.gold import gold_label
from imhi_bench.tasks.fewshot import DemoSampler, balanced_draw, demonstration_docs

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--max-new-tokens", "2", "--bootstrap", "0", "--no-db"]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("IMHI_CACHE_DIR", str(tmp_path_factory.mktemp("gen-cache")))


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), hidden_size=32, layers=1)


def every_test_post(set_name: str, fmt: str) -> frozenset[str]:
    """The posts no demonstration may have: every test_data file, and the task's own."""
    own = {post_key(e.query) for e in load_examples(set_name, fmt)}
    return data.test_posts() | own


def eval_run(model: Path, out: Path, *args: str) -> tuple[dict, list[dict]]:
    assert main(["eval", "--model", str(model), "--output", str(out), *FAST, *args]) == 0
    report = json.loads((out / "imhi_results.json").read_text())
    (samples,) = out.glob("samples_*.jsonl")
    return report, [json.loads(x) for x in samples.read_text().splitlines()]


def demonstrations(prompt: str, target: str, set_name: str, fmt: str) -> list[tuple[str, str]]:
    """The (query, gold) demonstrations a prompt holds before its target query, each a row
    of the task's pool, as lm-eval writes them: query + delimiter + gold, then "\\n\\n"."""
    assert prompt.endswith(target)
    pool = demonstration_pool(set_name, fmt)
    delim = "" if fmt == "completion" else " "
    by_query = dict(pool.rows)
    head, found = prompt[: len(prompt) - len(target)], []
    while head:
        query = next((q for q in by_query if head.startswith(q + delim)), None)
        assert query is not None, f"not a pool row: {head[:120]!r}"
        demo = query + delim + by_query[query] + "\n\n"
        assert head.startswith(demo)
        found.append((query, by_query[query]))
        head = head[len(demo):]
    return found


@pytest.fixture(scope="module")
def dr_run(tiny_llama, tmp_path_factory):
    """The Done-when command: imhi_dr, 5 samples, 2 demonstrations."""
    return eval_run(tiny_llama, tmp_path_factory.mktemp("runs") / "dr", "--tasks", "imhi_dr",
                    "--limit", "5", "--num-fewshot", "2")


def test_prompts_hold_the_target_and_two_demonstrations_none_a_test_post(dr_run):
    report, samples = dr_run
    assert [r["doc_id"] for r in samples] == list(range(5))
    forbidden = every_test_post("DR", "instruction")
    for r in samples:
        prompt, target = r["prompt"], r["doc"]["query"]
        assert prompt.count('Consider this post: "') == 3
        demos = demonstrations(prompt, target, "DR", "instruction")
        assert len(demos) == 2
        assert all(post_key(q) not in forbidden for q, _ in demos)
        assert split_post(target)[1] not in prompt[: -len(target)]  # the target post is last
        # class-balanced: a binary set with K=2 shows one yes and one no
        assert sorted(gold_label("DR", g) for _, g in demos) == ["no", "yes"]
    fs = report["provenance"]["fewshot"]
    # lm-eval's default --fewshot_random_seed, so plain lm_eval draws the same
    assert fs["num_fewshot"] == 2 and fs["seed"] == 1234 and fs["notes"] == []
    pool = fs["pools"]["DR"]
    assert pool["source"] == "train" and pool["size"] == 1003
    assert list(pool["files"]) == ["train_data/instruction_data/DR/train.csv"]
    assert len(pool["files"]["train_data/instruction_data/DR/train.csv"]) == 64


def test_same_demonstrations_across_runs_batch_sizes_and_limits(dr_run, tiny_llama, tmp_path):
    _, first = dr_run
    prompts = [r["prompt"] for r in first]
    _, again = eval_run(tiny_llama, tmp_path / "again", "--tasks", "imhi_dr", "--limit", "5",
                        "--num-fewshot", "2", "--batch-size", "1", "--no-cache")
    assert [r["prompt"] for r in again] == prompts
    _, fewer = eval_run(tiny_llama, tmp_path / "fewer", "--tasks", "DR", "--limit", "3",
                        "--num-fewshot", "2", "--batch-size", "2")
    assert [r["prompt"] for r in fewer] == prompts[:3]
    report, other = eval_run(tiny_llama, tmp_path / "other", "--tasks", "imhi_dr", "--limit",
                             "5", "--num-fewshot", "2", "--fewshot-seed", "7")
    assert report["provenance"]["fewshot"]["seed"] == 7
    assert [r["prompt"] for r in other] != prompts
    assert all(r["prompt"].endswith(r["doc"]["query"]) for r in other)


def test_a_sample_draws_the_same_whatever_the_order():
    docs = demonstration_docs([{"set": "SAD", "format": "instruction", "imhi_data_dir": ""}])
    sampler = DemoSampler(docs)
    sampler.set_rnd(3)
    ids = list(range(20))
    forward = {i: sampler.sample(4, eval_doc={"set": "SAD", "doc_id": i}) for i in ids}
    sampler = DemoSampler(docs)
    sampler.set_rnd(3)
    backward = {i: sampler.sample(4, eval_doc={"set": "SAD", "doc_id": i}) for i in ids[::-1]}
    assert forward == backward
    assert len({tuple(d["row"] for d in v) for v in forward.values()}) == 20


def test_class_balance_where_the_pool_allows():
    labels = ["a"] * 50 + ["b"] * 3 + ["c"] * 1
    for seed in range(20):
        drawn = balanced_draw(labels, 9, random.Random(seed))
        assert len(set(drawn)) == 9
        assert Counter(labels[i] for i in drawn) == {"a": 5, "b": 3, "c": 1}
    assert sorted(balanced_draw(labels, 100, random.Random(0))) == list(range(54))
    # SAD's nine classes, K=9: one of each
    docs = demonstration_docs([{"set": "SAD", "format": "instruction", "imhi_data_dir": ""}])
    sampler = DemoSampler(docs)
    for doc_id in range(5):
        demos = sampler.sample(9, eval_doc={"set": "SAD", "doc_id": doc_id})
        assert len({gold_label("SAD", d["gold"]) for d in demos}) == 9


def _link(root: Path, data: Path, rel: str) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).symlink_to(data / rel)


def test_pool_fallback_order(imhi_dir, tmp_path):
    # the release: train first, else val (Irf), else expert examples (loneliness)
    assert demonstration_pool("DR").source == "train"
    irf = demonstration_pool("Irf", "completion")
    assert irf.source == "val" and irf.files == ("train_data/complete_data/Irf/val.csv",)
    lonely = demonstration_pool("loneliness")
    assert lonely.source == "expert" and 0 < len(lonely.rows) < 35
    assert lonely.dropped == 35 - len(lonely.rows)
    # never a test post, in any format, nor for the expert tasks (their file is the test set)
    dreaddit = demonstration_pool("dreaddit")
    assert dreaddit.dropped == 2  # two released train queries are test queries
    for name in SETS:
        for fmt in FORMATS:
            pool = demonstration_pool(name, fmt)
            if (imhi_dir / SETS[name].path(fmt)).is_file():
                forbidden = every_test_post(name, fmt)
                assert not any(post_key(q) in forbidden for q, _ in pool.rows), (name, fmt)
            shape = "Post: " if fmt == "completion" else 'Consider this post: "'
            assert all(q.startswith(shape) for q, _ in pool.rows), (name, fmt)
    assert demonstration_pool("loneliness", "expert").source is None
    # expert rows in the completion format take the set's completion wording
    (query, gold), *_ = demonstration_pool("loneliness", "completion").rows
    assert query.endswith(' Question: The answer to the question "Does the poster suffers from '
                          'loneliness?" is ') and gold.split(".")[0] in ("yes", "no")
    # a data dir without DR's train file falls back to val, then to the expert examples
    root = tmp_path / "data"
    for rel in ("test_data/test_instruction/DR.csv", "test_data/test_complete/DR.csv",
                "human_evaluation/test_instruction_expert/DR.csv",
                "train_data/instruction_data/DR/val.csv"):
        _link(root, imhi_dir, rel)
    val = demonstration_pool("DR", "instruction", root)
    assert val.source == "val" and val.files == ("train_data/instruction_data/DR/val.csv",)
    assert len(val.rows) + val.dropped == 430
    (root / "train_data/instruction_data/DR/val.csv").unlink()
    expert = demonstration_pool("DR", "instruction", root)
    # every DR expert post is a DR test post: nothing is left
    assert expert.source is None and expert.rows == () and expert.dropped == 35


def test_small_pool_note_and_fewer_demonstrations(tiny_llama, tmp_path, capsys):
    report, samples = eval_run(tiny_llama, tmp_path / "tsid", "--tasks", "imhi_tsid",
                               "--limit", "2", "--num-fewshot", "3")
    out = capsys.readouterr().out
    note = ("few-shot imhi_tsid: 2 demonstrations per sample instead of 3: its expert pool "
            "holds only 2 outside the test sets")
    assert note in out
    fs = report["provenance"]["fewshot"]
    assert fs["notes"] == [note]
    assert fs["pools"]["t-sid"]["source"] == "expert" and fs["pools"]["t-sid"]["size"] == 2
    for r in samples:
        assert len(demonstrations(r["prompt"], r["doc"]["query"], "t-sid", "instruction")) == 2


def test_negative_num_fewshot_is_one_line_before_any_model_loads(tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["eval", "--model", str(tmp_path / "no-model"), "--tasks", "imhi_dr",
               "--num-fewshot", "-1", "--output", str(out), "--no-db"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--num-fewshot must be 0 or more" in err[0]
    assert not out.exists()


def test_plain_lm_eval_num_fewshot(tiny_llama, tmp_path, imhi_dir, dr_run):
    """Plain `lm_eval --num_fewshot 2` with its defaults gives the demonstrations of
    `imhi-bench eval --num-fewshot 2` with its defaults: byte-identical prompts."""
    lm_eval = Path(sys.executable).with_name("lm_eval")
    env = dict(os.environ, IMHI_DATA_DIR=str(imhi_dir), IMHI_BART_MODEL="none")
    r = subprocess.run(
        [str(lm_eval), "--model", "hf", "--model_args", f"pretrained={tiny_llama}",
         "--device", "cpu", "--include_path", "tasks_yaml",
         "--tasks", "imhi_dr,imhi_completion_loneliness", "--limit", "3", "--num_fewshot", "2",
         "--gen_kwargs", "max_gen_toks=2", "--output_path", str(tmp_path), "--log_samples"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads(next(tmp_path.rglob("results_*.json")).read_text())
    assert results["n-shot"] == {"imhi_dr": 2, "imhi_completion_loneliness": 2}
    for task, (set_name, fmt) in {"imhi_dr": ("DR", "instruction"),
                                  "imhi_completion_loneliness": ("loneliness",
                                                                 "completion")}.items():
        rows = [json.loads(x) for x in next(tmp_path.rglob(f"samples_{task}_*.jsonl"))
                .read_text().splitlines()]
        assert len(rows) == 3
        if task == "imhi_dr":
            ours = [r["prompt"] for r in dr_run[1][:3]]
            theirs = [r["arguments"]["gen_args_0"]["arg_0"]
                      for r in sorted(rows, key=lambda r: r["doc_id"])]
            assert theirs == ours
        forbidden = every_test_post(set_name, fmt)
        for row in rows:
            prompt = row["arguments"]["gen_args_0"]["arg_0"]
            demos = demonstrations(prompt, row["doc"]["query"], set_name, fmt)
            assert len(demos) == 2
            assert not any(post_key(q) in forbidden for q, _ in demos)
            assert sorted(gold_label(set_name, g) for _, g in demos) == ["no", "yes"]
