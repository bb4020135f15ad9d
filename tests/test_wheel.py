"""The built wheel carries the recipes and baseline specs: installed (`--no-deps`) into a fresh
venv, away from the checkout, `train --config mentallama-chat-7b` and `baseline run
mentalroberta` work by name (tiny model, one step / a few posts), and `train --list` and
`baseline list` show the names.

The fresh venv sees the test venv's libraries (torch, transformers, ...) through a .pth
file written after the install, so nothing is downloaded; the package is built from a copy of
the sources in a temp dir, so the checkout gets no build/ or egg-info.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from tiny_models import build_tiny_bert_classifier, cached, tiny_llama_dir

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "imhi_bench" / "train" / "recipes"
SPECS = ROOT / "imhi_bench" / "baselines" / "specs"


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)
    assert proc.returncode == 0, (cmd, proc.stdout[-2000:], proc.stderr[-3000:])
    return proc


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> tuple[Path, dict[str, str], Path]:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "imhi_bench", src / "imhi_bench",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--no-index", "-q", str(src), "-w", str(tmp / "dist")])
    [wheel] = (tmp / "dist").glob("imhi_bench-*.whl")
    env_dir = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)])
    python = env_dir / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
          "--no-index", "-q", str(wheel)])
    # then the test venv's libraries, behind the venv's own site-packages (the wheel wins)
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                         "['purelib'])"]).stdout.strip())
    (site / "test-venv-libraries.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    work = tmp / "work"  # not the checkout: nothing found by relative path
    work.mkdir()
    return env_dir, env, work


def test_the_wheel_ships_the_recipes_and_specs(venv):
    env_dir, env, work = venv
    where = _run([str(env_dir / "bin" / "python"), "-c",
                  "import imhi_bench; print(imhi_bench.__file__)"], env=env, cwd=work)
    assert Path(where.stdout.strip()).is_relative_to(env_dir)  # the wheel, not the checkout
    cli = str(env_dir / "bin" / "imhi-bench")
    listed = _run([cli, "train", "--list"], env=env, cwd=work).stdout
    for p in RECIPES.glob("*.yaml"):
        assert f"\n{p.stem} " in listed
    for name in ("ddp", "fsdp", "zero3"):
        path = Path(_run([cli, "train", "--accelerate-config", name], env=env,
                         cwd=work).stdout.strip())
        assert path.is_relative_to(env_dir) and path.is_file()
    specs = _run([cli, "baseline", "list"], env=env, cwd=work).stdout
    assert [line.split()[0] for line in specs.splitlines()[2:]] == \
        sorted(p.stem for p in SPECS.glob("*.yaml"))


def test_train_and_baseline_run_by_name_from_the_wheel(venv, imhi_dir, tmp_path):
    env_dir, env, work = venv
    out, run = tmp_path / "trained", tmp_path / "roberta"
    encoder = cached("bert-2", build_tiny_bert_classifier, num_labels=2)
    train = ["train", "--config", "mentallama-chat-7b", f"model={tiny_llama_dir()}",
             f"output_dir={out}", "sets=DR", "max_steps=1", "save_steps=1", "precision=fp32",
             "gradient_checkpointing=false", "report_to=none", "max_length=256",
             "per_device_batch_size=2", "gradient_accumulation_steps=1", "max_val=4",
             "eval_steps=0", f"data_dir={imhi_dir}"]
    baseline = ["baseline", "run", "mentalroberta", f"encoder={encoder}", "sets=DR",
                "epochs=1", "max_train=32", "limit=10", "max_length=64", "batch_size=8",
                "--no-db", "--output", str(run), "--data-dir", str(imhi_dir)]
    # both in one process of the venv's interpreter: one start-up of torch and transformers
    script = ("import sys\nfrom imhi_bench.cli.main import main\n"
              f"sys.exit(main({train!r}) or main({baseline!r}))\n")
    done = _run([str(env_dir / "bin" / "python"), "-c", script], env=env, cwd=work)
    assert "trained 1 steps" in done.stdout
    recipe = json.loads((out / "imhi_training_card.json").read_text("utf-8"))["recipe"]
    # the shipped recipe's own values, where no override was given
    assert (recipe["learning_rate"], recipe["warmup_ratio"]) == (1e-5, 0.03)
    report = json.loads((run / "imhi_results.json").read_text("utf-8"))
    assert report["provenance"]["baseline"]["name"] == "MentalRoBERTa"
    assert report["sets"]["DR"]["n"] == 10
