"""`imhi-bench train` end to end through the command line, on tiny local models.

- a run killed part-way (SIGKILL) resumes with `--resume` to the same final step, with its
  optimizer and scheduler state, and ends where an uninterrupted run ends;
- `--resume` / `--overwrite` guard the output folder;
- LoRA trains an adapter that `eval --adapter` takes, `train merge` folds it into its base,
  and the merged model generates what base + adapter generate;
- a tiny BART trains on completion data and evaluates with `--backend hf-seq2seq`;
- the training card (recipe, data sha256, row counts, dropped test rows, steps, metrics);
- bad input: one line on stderr, exit 2, no output folder;
- `f1_steps` logs the weighted F1 into the card and the trainer state.

Three tests pin trainer bugs they found, now fixed: resuming after a kill during a
checkpoint save, the documented `train merge --adapter ...` words, and the training log
lines lost at F1 steps.

Timing (2 shared cores): the runs are a few dozen optimizer steps of tiny Llamas with
max_length 256; training subprocesses and in-process runs use one torch thread each (see
`tiny_models.torch_threads`: two threads on a busy 2-core box made a step over ten times
slower),
and the uninterrupted reference run trains while the run to be killed does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny_models import build_tiny_bart, build_tiny_llama, torch_threads

from imhi_bench.cli.main import main
from imhi_bench.core.fileio import sha256_file

ROOT = Path(__file__).resolve().parents[1]
CARD = "imhi_training_card.json"
ERROR = "imhi-bench: error: "

# the resumable run: checkpoints every 5 steps, one log line (loss, learning rate) a step;
# with one thread a step of the 1-layer Llama takes 30 ms, too quick to be sure to kill the
# run between its first checkpoint and its end, so this one has 4 wider layers and batches
# of 4 (about 0.1 s a step)
STEPS = 40
RESUME_ARGS = [f"max_steps={STEPS}", "save_steps=5", "save_total_limit=2", "logging_steps=1",
               "learning_rate=2e-3", "sets=DR", "per_device_batch_size=4"]
EVAL_ARGS = ["--tasks", "imhi_dr", "--limit", "4", "--no-db", "--no-cache",
             "--max-new-tokens", "32", "--bootstrap", "0"]


def common(imhi_dir: Path) -> list[str]:
    """Overrides every run here shares: small and quick on a CPU."""
    return ["report_to=none", "max_length=256", "per_device_batch_size=2",
            "gradient_accumulation_steps=1", "max_val=4", "eval_steps=0", "seed=7",
            f"data_dir={imhi_dir}"]


def subprocess_env() -> dict[str, str]:
    # one intra-op thread: two training processes share the two cores without waiting on
    # each other, and every run of the same recipe does its sums in the same order
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def train_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "imhi_bench", "train", *args]


def cli(args: list[str], capsys) -> tuple[int, str, str]:
    """`imhi-bench ARGS` in this process, with one torch thread."""
    with torch_threads(1):
        rc = main(args)
    out, err = capsys.readouterr()
    return rc, out, err


def read_json(path: Path) -> dict:
    return json.loads(path.read_text("utf-8"))


def by_step(state: dict, key: str) -> dict[int, float]:
    """{step: value} of the training log lines of a trainer_state.json that carry `key`."""
    return {h["step"]: h[key] for h in state["log_history"] if key in h and "train_loss" not in h}


def tree(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder` with its size and mtime: to see that nothing changed."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def generations(run_dir: Path) -> list[str]:
    lines = (run_dir / "samples_imhi_dr.jsonl").read_text("utf-8").splitlines()
    return [json.loads(x)["generation"] for x in lines]


def weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    # never read or write the user's generation cache
    monkeypatch.setenv("IMHI_CACHE_DIR", str(tmp_path_factory.mktemp("gen-cache")))


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("train-llama"))


@pytest.fixture(scope="module")
def resume_llama(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("resume-llama"), hidden_size=128, layers=4)


@pytest.fixture(scope="module")
def tiny_bart(tmp_path_factory) -> Path:
    return build_tiny_bart(tmp_path_factory.mktemp("train-bart"))


# --------------------------------------------------------------------------- resume


@pytest.fixture(scope="module")
def killed_and_reference(resume_llama, imhi_dir, tmp_path_factory):
    """Two runs of the same recipe started together: one SIGKILLed once it has a complete
    checkpoint (trainer_state.json written, the last file of a checkpoint), the other left to
    finish.  Returns (killed output_dir, the step it was killed after, reference output_dir,
    the overrides both used)."""
    base = tmp_path_factory.mktemp("resume")
    killed, reference = base / "killed", base / "reference"
    # RESUME_ARGS' batch size replaces common()'s (a key given twice is refused)
    args = [f"model={resume_llama}", *[a for a in common(imhi_dir)
                                       if not a.startswith("per_device_batch_size=")],
            *RESUME_ARGS]
    env = subprocess_env()
    logs = {}
    procs = {}
    for name, out in (("killed", killed), ("reference", reference)):
        logs[name] = open(base / f"{name}.log", "wb")  # closed below
        procs[name] = subprocess.Popen(train_cmd(*args, f"output_dir={out}"), env=env,
                                       stdout=logs[name], stderr=subprocess.STDOUT,
                                       start_new_session=True)
    victim = procs["killed"]
    saved = None
    try:
        deadline = time.monotonic() + 240
        while saved is None and victim.poll() is None and time.monotonic() < deadline:
            for ckpt in sorted(killed.glob("checkpoint-*")):
                try:
                    state = read_json(ckpt / "trainer_state.json")
                except (OSError, ValueError):  # not written yet, or half written
                    continue
                if state["global_step"] >= 5:
                    saved = state["global_step"]
                    break
            else:
                time.sleep(0.05)
        if saved is not None:
            os.kill(victim.pid, signal.SIGKILL)
        finished_first = victim.wait(timeout=60)
        rc_ref = procs["reference"].wait(timeout=400)
    finally:
        for p in procs.values():
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
        for f in logs.values():
            f.close()
    log = (base / "killed.log").read_text("utf-8", "replace")
    assert saved is not None, f"no checkpoint before the run ended (rc {finished_first}):\n{log}"
    assert finished_first == -signal.SIGKILL
    assert rc_ref == 0, (base / "reference.log").read_text("utf-8", "replace")[-3000:]
    return killed, saved, reference, args


def test_killed_run_resumes_to_the_same_final_step(killed_and_reference, capsys):
    killed, saved, reference, args = killed_and_reference
    # killed part-way: checkpoints, but no final model and no card
    assert saved < STEPS
    assert not (killed / CARD).exists() and not (killed / "model.safetensors").exists()
    last = max(int(p.name.split("-")[1]) for p in killed.glob("checkpoint-*"))
    assert saved <= last < STEPS

    rc, out, err = cli(["train", *args, f"output_dir={killed}", "--resume"], capsys)
    assert rc == 0, err[-3000:]
    assert f"resuming from {killed / f'checkpoint-{last}'}" in out
    assert f"trained {STEPS} steps into {killed}" in out

    card = read_json(killed / CARD)
    state = read_json(killed / f"checkpoint-{STEPS}" / "trainer_state.json")
    ref_state = read_json(reference / f"checkpoint-{STEPS}" / "trainer_state.json")
    assert card["global_step"] == state["global_step"] == ref_state["global_step"] == STEPS

    # the scheduler was restored: the learning rate after the resume continues the schedule
    # (a fresh scheduler would start the warm-up again at 0)
    lr, ref_lr = by_step(state, "learning_rate"), by_step(ref_state, "learning_rate")
    after = list(range(last + 1, STEPS + 1))
    assert set(after) <= set(lr)
    assert [lr[s] for s in after] == pytest.approx([ref_lr[s] for s in after], rel=1e-9)
    assert lr[last + 1] > 0

    # the optimizer was restored too: AdamW's step count and the scheduler's position are
    # those of the uninterrupted run, not the STEPS - last of a restarted one
    import torch

    opt = torch.load(killed / f"checkpoint-{STEPS}" / "optimizer.pt", weights_only=True)
    sched = torch.load(killed / f"checkpoint-{STEPS}" / "scheduler.pt", weights_only=True)
    assert {int(s["step"]) for s in opt["state"].values()} == {STEPS}
    assert sched["last_epoch"] == STEPS

    # the resumed run (same data order, moments, schedule) trains as the uninterrupted one:
    # the same losses step by step and the same final weights
    loss, ref_loss = by_step(state, "loss"), by_step(ref_state, "loss")
    assert [loss[s] for s in after] == pytest.approx([ref_loss[s] for s in after], rel=1e-3)
    got, want = weights(killed), weights(reference)
    assert got.keys() == want.keys()
    for name in want:
        assert torch.allclose(got[name], want[name], rtol=1e-3, atol=1e-5), name


def test_resume_skips_a_checkpoint_killed_while_being_written(killed_and_reference,
                                                                tmp_path, capsys):
    """The kill came during the save of the last checkpoint (the model is written, the
    optimizer, RNG and trainer state are not): --resume continues from the one before."""
    import shutil

    _, _, reference, args = killed_and_reference
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    for final in (CARD, "model.safetensors", "config.json"):
        (out / final).unlink()
    partial = out / f"checkpoint-{STEPS}"
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json"):
        (partial / name).unlink(missing_ok=True)
    rc, out_text, err = cli(["train", *args, f"output_dir={out}", "--resume"], capsys)
    assert rc == 0, err
    assert f"resuming from {out / f'checkpoint-{STEPS - 5}'}" in out_text
    assert read_json(out / CARD)["global_step"] == STEPS


def test_output_dir_guards(killed_and_reference, tmp_path):
    """A non-empty output_dir needs --resume or --overwrite, and --overwrite only replaces
    a folder `imhi-bench train` wrote: one line, exit 2, nothing touched."""
    _, _, reference, args = killed_and_reference
    env = subprocess_env()
    before = tree(reference)
    p = subprocess.run(train_cmd(*args, f"output_dir={reference}"), env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        f"{ERROR}output_dir {reference} is not empty: pass --resume to continue its run, "
        "--overwrite to replace it, or another output_dir"]
    assert tree(reference) == before

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("my own files\n")
    before = tree(foreign)
    p = subprocess.run(train_cmd(*args, f"output_dir={foreign}", "--overwrite"), env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(ERROR), p.stderr
    assert "did not write" in lines[0] and str(foreign) in lines[0]
    assert tree(foreign) == before


# --------------------------------------------------------------------------- the card


def test_training_card(killed_and_reference, imhi_dir):
    """The uninterrupted run's card: the recipe as run, each data file with its sha256, rows
    per set, the final step and metrics; the folder is safetensors only."""
    _, _, reference, _ = killed_and_reference
    card = read_json(reference / CARD)
    recipe = card["recipe"]
    assert recipe["sets"] == ["DR"] and recipe["max_steps"] == STEPS
    assert recipe["per_device_batch_size"] == 4 and recipe["save_steps"] == 5
    assert recipe["learning_rate"] == 2e-3 and recipe["max_length"] == 256
    assert recipe["model"] and recipe["output_dir"] == str(reference)
    assert card["training_data"] == "other" and card["architecture"] == "causal"
    assert "git_commit" in card
    if (ROOT / ".git").exists():
        assert card["git_commit"]
    files = {"train_data/instruction_data/DR/train.csv", "train_data/instruction_data/DR/val.csv"}
    assert set(card["data_files"]) == files
    for rel, digest in card["data_files"].items():
        assert digest == sha256_file(imhi_dir / rel), rel
    per_set = card["rows"]["per_set"]
    assert per_set == {"DR": {"train": 1003, "train_dropped_in_test": 0,
                              "val": 430, "val_dropped_in_test": 0}}
    # the tiny tokenizer spends many tokens a word: most DR responses exceed 256 tokens
    assert card["rows"]["train"] + card["rows"]["dropped_too_long"] == 1003
    assert card["rows"]["train"] > 0
    assert card["global_step"] == STEPS
    assert card["metrics"]["train_loss"] > 0 and card["metrics"]["epoch"] > 0
    assert card["f1_history"] == []

    top = {p.name for p in reference.iterdir() if p.is_file()}
    assert {"model.safetensors", "config.json", "train_recipe.yaml", CARD} <= top
    assert "training_args.bin" not in top
    assert not [n for n in top if n.endswith((".bin", ".pt", ".pth"))]


@pytest.fixture(scope="module")
def dreaddit_f1_run(tiny_llama, imhi_dir, tmp_path_factory) -> tuple[Path, str]:
    """sets=dreaddit with the weighted F1 every 2 steps and a log line every step."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("dreaddit") / "run"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), torch_threads(1):
        rc = main(["train", f"model={tiny_llama}", f"output_dir={out}", "sets=dreaddit",
                   "max_steps=4", "save_steps=4", "f1_steps=2", "f1_samples=4",
                   "f1_max_new_tokens=16", "logging_steps=1", *common(imhi_dir)])
    assert rc == 0
    return out, stdout.getvalue()


def test_card_counts_dropped_test_rows_and_f1_history(dreaddit_f1_run, imhi_dir):
    """sets=dreaddit: the two train queries that are dreaddit test queries are dropped and
    counted; f1_steps > 0 logs the weighted F1 (scoring pipeline) into the card and the
    trainer state."""
    out, stdout = dreaddit_f1_run
    card = read_json(out / CARD)
    counts = card["rows"]["per_set"]["dreaddit"]
    assert counts["train_dropped_in_test"] == 2
    assert counts["train"] == 2837 - 2
    assert "dropped (also in a test set): {'dreaddit': 2}" in stdout
    rel = "train_data/instruction_data/dreaddit/train.csv"
    assert card["data_files"][rel] == sha256_file(imhi_dir / rel)
    assert card["global_step"] == 4

    assert [h["step"] for h in card["f1_history"]] == [2, 4]
    for h in card["f1_history"]:
        assert 0 <= h["eval_weighted_f1"] <= 100
        assert h["eval_weighted_f1_dreaddit"] == h["eval_weighted_f1"]  # one set: its F1
        assert 0 <= h["eval_unparseable"] <= 4
    state = read_json(out / "checkpoint-4" / "trainer_state.json")
    logged = [h for h in state["log_history"] if "eval_weighted_f1" in h]
    assert logged == card["f1_history"]


def test_f1_steps_keep_the_training_log_lines(dreaddit_f1_run):
    out, _ = dreaddit_f1_run
    state = read_json(out / "checkpoint-4" / "trainer_state.json")
    assert sorted(by_step(state, "loss")) == [1, 2, 3, 4]
    assert sorted(by_step(state, "learning_rate")) == [1, 2, 3, 4]
    for h in state["log_history"]:
        if "eval_weighted_f1" in h:
            assert {k for k in h if not k.startswith("eval_")} <= {"step", "epoch"}, h


# --------------------------------------------------------------------------- LoRA


@pytest.fixture(scope="module")
def lora_run(tiny_llama, imhi_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("lora") / "adapter"
    with torch_threads(1):
        rc = main(["train", f"model={tiny_llama}", f"output_dir={out}", "sets=DR",
                   "finetuning=lora", "lora_targets=q_proj,v_proj", "lora_r=8",
                   "lora_alpha=16", "max_steps=20", "learning_rate=5e-3", "save_steps=20",
                   *common(imhi_dir)])
    assert rc == 0
    return out


def test_lora_adapter_evaluates_and_merges(tiny_llama, lora_run, tmp_path, capsys):
    adapter = lora_run
    names = {p.name for p in adapter.iterdir() if p.is_file()}
    assert {"adapter_config.json", "adapter_model.safetensors", CARD} <= names
    assert "model.safetensors" not in names  # the adapter only, not a full copy
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth"))]
    config = read_json(adapter / "adapter_config.json")
    assert set(config["target_modules"]) == {"q_proj", "v_proj"} and config["r"] == 8
    assert read_json(adapter / CARD)["recipe"]["finetuning"] == "lora"

    runs = {}
    for name, model in (("base", ["--model", str(tiny_llama)]),
                        ("adapter", ["--model", str(tiny_llama), "--adapter", str(adapter)])):
        runs[name] = tmp_path / name
        rc, _, err = cli(["eval", *model, *EVAL_ARGS, "--output", str(runs[name])], capsys)
        assert rc == 0, err[-3000:]
    training = read_json(runs["adapter"] / "imhi_results.json")["provenance"]["training"]
    assert training["finetuning"] == "lora" and training["sets"] == ["DR"]

    merged = tmp_path / "merged"
    # `imhi-bench train merge --adapter ...` as documented is refused by argparse (see
    # test_merge_command_as_documented); after `--` the same words reach the merge command
    rc, out, err = cli(["train", "merge", "--adapter", str(adapter), "--out", str(merged)],
                       capsys)
    assert rc == 0, err[-3000:]
    assert f"merged {adapter} into {merged}" in out
    names = {p.name for p in merged.iterdir() if p.is_file()}
    assert {"config.json", "model.safetensors"} <= names
    assert "adapter_config.json" not in names and "adapter_model.safetensors" not in names
    assert not any("lora" in k for k in weights(merged))
    assert read_json(merged / CARD)["merged"]["adapter"] == str(adapter)
    # the merged weights compute what base + adapter compute, and not what the base does
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ids = AutoTokenizer.from_pretrained(merged)(
        "Consider this post: I can't sleep and nothing helps.", return_tensors="pt")
    with torch.inference_mode(), torch_threads(1):
        logits = {
            "base": AutoModelForCausalLM.from_pretrained(tiny_llama)(**ids).logits,
            "adapter": PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(
                tiny_llama), str(adapter)).eval()(**ids).logits,
            "merged": AutoModelForCausalLM.from_pretrained(merged)(**ids).logits,
        }
    assert torch.allclose(logits["merged"], logits["adapter"], atol=1e-4, rtol=1e-4)
    assert (logits["merged"] - logits["base"]).abs().max() > 1e-2

    runs["merged"] = tmp_path / "merged-run"
    rc, _, err = cli(["eval", "--model", str(merged), *EVAL_ARGS, "--output",
                      str(runs["merged"])], capsys)
    assert rc == 0, err[-3000:]

    gens = {name: generations(run) for name, run in runs.items()}
    assert len(gens["adapter"]) == 4
    assert gens["adapter"] != gens["base"], "the trained adapter left every generation as is"
    assert gens["merged"] == gens["adapter"]


def test_merge_command_as_documented(lora_run, tmp_path, capsys):
    merged = tmp_path / "merged"
    with _argparse_exit_fails():
        rc, _, err = cli(["train", "merge", "--adapter", str(lora_run), "--out", str(merged)],
                         capsys)
    assert rc == 0, err
    assert (merged / "model.safetensors").is_file()
    # half a merge command, or merge options on a training run: one line each
    rc, _, err = cli(["train", "merge", "--adapter", str(lora_run)], capsys)
    assert rc == 2 and "usage: imhi-bench train merge --adapter DIR --out DIR" in err
    rc, _, err = cli(["train", "model=m", "output_dir=o", "--adapter", str(lora_run)], capsys)
    assert rc == 2 and "are for `imhi-bench train merge`" in err


class _argparse_exit_fails:
    """argparse exits (SystemExit 2) on options it does not know: a plain test failure."""

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        if kind is SystemExit:
            raise AssertionError(f"argparse refused the command (exit {value.code})")
        return False


# --------------------------------------------------------------------------- seq2seq


def test_bart_trains_on_completion_data_and_evaluates(tiny_bart, imhi_dir, tmp_path, capsys):
    out = tmp_path / "bart"
    rc, stdout, err = cli(["train", f"model={tiny_bart}", f"output_dir={out}", "sets=DR",
                           "format=completion", "max_steps=6", "save_steps=6",
                           "learning_rate=5e-3", "logging_steps=1", *common(imhi_dir)],
                          capsys)
    assert rc == 0, err[-3000:]
    assert f"trained 6 steps into {out}" in stdout
    card = read_json(out / CARD)
    assert card["architecture"] == "seq2seq" and card["recipe"]["format"] == "completion"
    # the release's irregular names for DR's completion files
    files = {"train_data/complete_data/DR/reddit_train.csv",
             "train_data/complete_data/DR/reddit_valid.csv"}
    assert set(card["data_files"]) == files
    for rel in files:
        assert card["data_files"][rel] == sha256_file(imhi_dir / rel)
    assert card["global_step"] == 6
    state = read_json(out / "checkpoint-6" / "trainer_state.json")
    losses = by_step(state, "loss")
    assert sorted(losses) == [1, 2, 3, 4, 5, 6] and all(v > 0 for v in losses.values())
    assert (out / "model.safetensors").is_file() and not (out / "training_args.bin").exists()

    run = tmp_path / "bart-run"
    rc, _, err = cli(["eval", "--model", str(out), "--backend", "hf-seq2seq", "--tasks",
                      "imhi_completion_dr", "--limit", "4", "--no-db", "--no-cache",
                      "--max-new-tokens", "32", "--bootstrap", "0", "--output", str(run)],
                     capsys)
    assert rc == 0, err[-3000:]
    report = read_json(run / "imhi_results.json")
    assert report["provenance"]["training"]["format"] == "completion"
    samples = [json.loads(x) for x in
               (run / "samples_imhi_completion_dr.jsonl").read_text("utf-8").splitlines()]
    assert len(samples) == 4 and all(isinstance(s["generation"], str) for s in samples)


# --------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def recipes(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("recipes")
    files = {"not_yaml": ("broken.yaml", "model: [unclosed\n  sets: : DR\n"),
             "unknown_key_in_file": ("typo.yaml", "sets: [DR]\nlearning_rat: 1.0e-3\n")}
    for name, text in files.values():
        (folder / name).write_text(text, "utf-8")
    return {case: folder / name for case, (name, _) in files.items()}


@pytest.mark.parametrize(("case", "expect"), [
    ("unknown_key", ["unknown override key 'learning_rat'", "did you mean learning_rate?"]),
    ("unknown_key_in_file", ["typo.yaml key 'learning_rat'", "did you mean learning_rate?"]),
    ("no_train_data", ["CAMS has no instruction train data",
                       "train_data/instruction_data/CAMS/train.csv"]),
    ("no_model", ["no such folder"]),
    ("qlora_on_cpu", ["finetuning=qlora", "CUDA", "finetuning=lora"]),
    ("not_yaml", ["is not readable YAML", "broken.yaml"]),
])
def test_bad_input_is_one_line_exit_2(case, expect, tiny_llama, imhi_dir, recipes, tmp_path):
    out = tmp_path / "out"
    model = tmp_path / "no-such-model" if case == "no_model" else tiny_llama
    args = {
        "unknown_key": ["learning_rat=1e-3"],
        "no_train_data": ["sets=CAMS"],
        "no_model": ["sets=DR"],
        "qlora_on_cpu": ["sets=DR", "finetuning=qlora"],
        "not_yaml": ["--config", str(recipes["not_yaml"])],
        "unknown_key_in_file": ["--config", str(recipes["unknown_key_in_file"])],
    }[case]
    p = subprocess.run(train_cmd(*args, f"model={model}", f"output_dir={out}", "max_steps=1",
                                 *common(imhi_dir)),
                       env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(ERROR), p.stderr
    for part in expect:
        assert part in lines[0], lines[0]
    if case == "no_model":
        assert str(model) in lines[0]
    assert p.stdout == ""
    assert not out.exists()
