"""Bad input and faults on the trainer, `train merge` and the baselines (issue 21: data loss,
late failures, silent acceptance, messages).

The sweep: each case runs `main` in-process in a private folder (which also holds the
default store and generation cache) and must end as one line `imhi-bench: error: ...`, exit
2, with the folder byte-for-byte the same afterwards: an earlier training run, merge or run
folder there is untouched.  Then the behaviours a sweep cannot show: `--overwrite` replaces
a run only once the new one succeeded, a first run that fails leaves no folder, a failed
`--resume` keeps the recipe, a data dir without validation rows trains (and says so), a
stale lock does not block, `merge --overwrite` swaps in a new merge, and every baseline run
gets a folder of its own that no later run replaces."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from fake_openai import serving
from test_bad_input_sweep import snapshot  # one "nothing written" check
from tiny_models import build_tiny_bart, build_tiny_llama, build_tiny_lora, torch_threads

from imhi_bench.cli.main import main
from imhi_bench.core.errors import ImhiError
from imhi_bench.train.data import split_path
from imhi_bench.train.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
SHARED_IMHI = Path(os.environ["IMHI_DATA_DIR"])
SPECS = ROOT / "imhi_bench" / "baselines" / "specs"
ERROR = "imhi-bench: error: "
KEY = "sk-test-trainsafe"

@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("llama"))


@pytest.fixture(scope="module")
def bart(tmp_path_factory) -> Path:
    return build_tiny_bart(tmp_path_factory.mktemp("bart"))


@pytest.fixture(scope="module")
def adapter(llama, tmp_path_factory) -> Path:
    return build_tiny_lora(llama, tmp_path_factory.mktemp("lora") / "adapter")


def quick(out: Path | str, *extra: str, model: Path | str) -> list[str]:
    """A `train` argv that trains one tiny step on a few DR rows."""
    return ["train", *extra, f"model={model}", f"output_dir={out}", "sets=DR", "max_steps=1",
            "max_train=4", "max_val=2", "report_to=none", "max_length=256",
            "per_device_batch_size=2", "gradient_accumulation_steps=1", "eval_steps=0",
            "save_steps=1", f"data_dir={SHARED_IMHI}"]


def with_override(argv: list[str], key: str, value: str) -> list[str]:
    """`argv` with recipe key `key` set to `value` (in place of its own, never twice)."""
    return [a for a in argv if not a.startswith(f"{key}=")] + [f"{key}={value}"]


# --------------------------------------------------------------------------- the sweep


class Ctx:
    def __init__(self, root: Path, llama: Path, bart: Callable[[], Path],
                 adapter: Callable[[], Path]):
        self.root, self.llama, self._bart, self._adapter = root, llama, bart, adapter

    def p(self, *parts: str) -> str:
        return str(self.root.joinpath(*parts))

    def folder(self, name: str) -> str:
        (self.root / name).mkdir(parents=True)
        return self.p(name)

    def file(self, name: str, data: str | bytes) -> str:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return str(path)

    def earlier_run(self, name: str = "out", **changed: str) -> str:
        """A folder an earlier `train` wrote (its recipe, as `quick` + `changed` give it)."""
        argv = quick(self.p(name), model=self.llama)
        for k, v in changed.items():
            argv = with_override(argv, k, v)
        recipe = load_recipe(None, [a for a in argv[1:] if "=" in a])
        self.file(f"{name}/train_recipe.yaml", yaml.safe_dump(recipe.to_dict(), sort_keys=False))
        self.file(f"{name}/model.safetensors", b"the earlier run's weights")
        self.file(f"{name}/checkpoint-1/trainer_state.json", "{}")
        return self.p(name)

    def model_copy(self, weights: bytes | None = None, *, weights_dir: bool = False) -> str:
        """The tiny Llama copied, its weights replaced by `weights` or by a folder."""
        import shutil

        dest = self.root / "model"
        shutil.copytree(self.llama, dest)
        target = dest / "model.safetensors"
        if weights_dir:
            target.unlink()
            target.mkdir()
        elif weights is not None:
            target.write_bytes(weights)
        return str(dest)

    @property
    def bart(self) -> Path:
        return self._bart()

    @property
    def adapter(self) -> Path:
        return self._adapter()

    def adapter_copy(self, config: str | None = None) -> str:
        import shutil

        dest = self.root / "adapter"
        shutil.copytree(self.adapter, dest)
        if config is not None:
            (dest / "adapter_config.json").write_text(config)
        return str(dest)

    def store(self) -> Path:
        from imhi_bench.store.engine import open_store

        path = self.root / "store.sqlite"
        open_store(str(path)).kw["bind"].dispose()
        return path

    def read_only_store(self) -> str:
        return f"sqlite:///file:{self.store()}?mode=ro&uri=true"

    def hold_lock(self, name: str = "out") -> None:
        """Another run's lock on output_dir `name` (released when the test ends)."""
        fd = os.open(self.p(f".{name}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self.held = fd


@dataclass
class Case:
    argv: Callable[[Ctx], list[str]]
    message: str


def train(c: Ctx, *extra: str, out: str = "out", **changed: str) -> list[str]:
    argv = quick(c.p(out), model=changed.pop("model", c.llama))
    for k, v in changed.items():
        argv = with_override(argv, k, v)
    return argv[:1] + list(extra) + argv[1:]


def merge(c: Ctx, out: str, *extra: str, adapter: str | None = None) -> list[str]:
    return ["train", "merge", "--adapter", adapter or str(c.adapter), "--out", out, *extra]


def spec(c: Ctx, text: str, name: str = "specs/bad.yaml") -> str:
    return c.file(name, text)


CASES: dict[str, Case] = {
    # 1, 12: checked before an earlier run is touched
    "train --overwrite, learning_rate=.nan": Case(
        lambda c: (c.earlier_run(), train(c, "--overwrite", learning_rate=".nan"))[1],
        "recipe key learning_rate must be a finite number, not nan"),
    "train --overwrite, damaged weights": Case(
        lambda c: (c.earlier_run(), train(c, "--overwrite",
                                          model=c.model_copy(b"\x08" + b"\x00" * 7 + b"{")))[1],
        "is damaged"),
    "train: epochs=.inf": Case(
        lambda c: train(c, epochs=".inf", max_steps="-1"), "epochs must be a finite number"),
    "train: max_steps=.inf": Case(
        lambda c: train(c, max_steps=".inf"), "max_steps must be a finite number, not inf"),
    "train: report_to a logger not installed": Case(
        lambda c: train(c, report_to="wandb"), "report_to=wandb needs wandb installed"),
    "train: report_to no logger": Case(
        lambda c: train(c, report_to="nosuchlogger"), "not a logger transformers knows"),
    "train: output_dir is a file": Case(
        lambda c: train(c, out="plain", output_dir=c.file("plain", "x")), "is a file"),
    "train: output_dir under a file": Case(
        lambda c: train(c, output_dir=c.file("plain", "x") + "/out"),
        "plain is a file, not a folder"),
    "train: output_dir in /proc": Case(
        lambda c: train(c, output_dir="/proc/imhi-train-out"), "cannot create files in /proc"),
    "train: unreadable weights": Case(
        lambda c: train(c, model=c.model_copy(weights_dir=True)), "cannot read"),
    # 14
    "train --resume with other sets": Case(
        lambda c: (c.earlier_run(), train(c, "--resume", sets="SAD"))[1],
        "recipe key sets differs from the run in"),
    "train --resume with another model": Case(
        lambda c: (c.earlier_run(), train(c, "--resume", model=c.model_copy()))[1],
        "recipe key model differs"),
    "train --resume of a folder train did not write": Case(
        lambda c: (c.file("out/notes.txt", "mine"), train(c, "--resume"))[1],
        "did not write"),
    "train: architecture=causal on BART": Case(
        lambda c: train(c, model=c.bart, architecture="causal"),
        "is an encoder-decoder (seq2seq) (model_type bart)"),
    "train: output_dir locked by another run": Case(
        lambda c: (c.hold_lock(), train(c))[1], "another imhi-bench train is writing output_dir"),
    "train: a key given twice": Case(
        lambda c: [*train(c), "max_steps=2"], "override key 'max_steps' is given twice"),
    "train: a key given twice in the recipe": Case(
        lambda c: train(c, "--config", c.file("r.yaml", "max_steps: 1\nsets: [DR]\n"
                                                          "max_steps: 2\n")),
        "key 'max_steps' is given twice (line 3)"),
    "train: recipe is a folder": Case(
        lambda c: train(c, "--config", c.folder("recipe.yaml")), "is a folder, not a YAML file"),
    # 2, 12, 15: merge
    "merge: --out holds other files": Case(
        lambda c: (c.file("notes.txt", "mine"), merge(c, c.p()))[1],
        "holds files imhi-bench train merge did not write"),
    "merge: --out is the adapter": Case(
        lambda c: merge(c, c.adapter_copy(), "--overwrite", adapter=c.p("adapter")),
        "is, holds or lies inside the --adapter folder"),
    "merge: --out inside the adapter": Case(
        lambda c: merge(c, c.adapter_copy() + "/merged", adapter=c.p("adapter")),
        "is, holds or lies inside the --adapter folder"),
    "merge: --out holds the base": Case(
        lambda c: merge(c, str(c.root), "--base", c.model_copy(), "--overwrite"),
        "is, holds or lies inside the base folder"),
    "merge: an earlier merge without --overwrite": Case(
        lambda c: (c.file("m/imhi_merge.json", "{}"), merge(c, c.p("m")))[1],
        "holds an earlier merge: pass --overwrite"),
    "merge: --out under a file": Case(
        lambda c: merge(c, c.file("plain", "x") + "/m"), "plain is a file, not a folder"),
    "merge: --base missing": Case(
        lambda c: merge(c, c.p("m"), "--base", "/nonexistent-imhi/base"),
        "--base /nonexistent-imhi/base: no such folder"),
    "merge: adapter_config.json not JSON": Case(
        lambda c: merge(c, c.p("m"), adapter=c.adapter_copy("{not json")),
        "adapter_config.json is not a JSON object"),
    # 3, 12, 15: baselines
    "baseline list: a bad spec": Case(
        lambda c: ["baseline", "list", "--dir",
                   str(Path(spec(c, "name: X\nrunner: generative\nmodel: m\nepochs: 0\n"))
                       .parent)], "bad.yaml"),
    "baseline run: a key given twice in the spec": Case(
        lambda c: ["baseline", "run", spec(c, "name: X\nmodel: m\nname: Y\n"), "--no-db"],
        "key 'name' is given twice"),
    "baseline run: encoder=/nope": Case(
        lambda c: ["baseline", "run", str(SPECS / "mentalroberta.yaml"), "encoder=/nope",
                   "--output", c.p("run"), "--no-db"], "'/nope': no such folder"),
    "baseline run: read-only store": Case(
        lambda c: ["baseline", "run", str(SPECS / "llama2-13b-zeroshot.yaml"),
                   f"model={c.llama}", "limit=1", "tasks=imhi_dr", "--output", c.p("run"),
                   "--db", c.read_only_store()], "cannot be written"),
    "eval: read-only store": Case(
        lambda c: ["eval", "--model", str(c.llama), "--tasks", "imhi_dr", "--limit", "1",
                   "--output", c.p("run"), "--db", c.read_only_store()], "cannot be written"),
    "eval: --cache-dir is a file": Case(
        lambda c: ["eval", "--model", str(c.llama), "--tasks", "imhi_dr", "--limit", "1",
                   "--output", c.p("run"), "--no-db", "--cache-dir", c.file("plain", "x")],
        "--cache-dir"),
}


@pytest.fixture
def ctx(tmp_path, monkeypatch, llama, request) -> Ctx:
    root = tmp_path / "case"
    root.mkdir()
    monkeypatch.chdir(root)
    monkeypatch.setenv("IMHI_DB_URL", f"sqlite:///{root / 'store.sqlite'}")
    monkeypatch.setenv("IMHI_CACHE_DIR", str(root / "cache"))
    monkeypatch.delenv("IMHI_DEBUG", raising=False)

    def lazy(name: str) -> Callable[[], Path]:
        return lambda: request.getfixturevalue(name)

    c = Ctx(root, llama, lazy("bart"), lazy("adapter"))
    yield c
    if hasattr(c, "held"):
        os.close(c.held)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_and_touches_nothing(name, ctx, capsys):
    argv = CASES[name].argv(ctx)
    before = snapshot(ctx.root)
    capsys.readouterr()
    with torch_threads(1):
        rc = main(argv)
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1, (rc, err[-2000:])
    assert lines[0].startswith(ERROR) and CASES[name].message in lines[0], lines[0]
    assert "(run with --debug" not in lines[0]
    assert snapshot(ctx.root) == before, "the command wrote or changed files"


# --------------------------------------------------------------------------- behaviours


def test_overwrite_replaces_a_run_only_once_the_new_one_succeeded(llama, tmp_path, monkeypatch,
                                                                  capsys):
    """A model that fails to load under --overwrite leaves the earlier run whole, and no
    sibling; a first run that fails leaves no folder, so the same command then runs; a
    stale lock (a run killed with -9) blocks nothing; a good --overwrite swaps in."""
    import imhi_bench.train.trainer as trainer

    out = tmp_path / "runs" / "out"
    real = trainer.build_trainer

    def fails(*args, **kwargs):
        raise ImhiError("the model did not load")

    monkeypatch.setattr(trainer, "build_trainer", fails)
    with torch_threads(1):
        assert main(quick(out, model=llama)) == 2  # a first run
    assert "the model did not load" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == []  # no folder (nor runs/), no lock, nothing

    monkeypatch.setattr(trainer, "build_trainer", real)
    out.parent.mkdir()
    (out.parent / ".out.lock").write_text("")  # left by a run killed with -9: not held
    with torch_threads(1):
        assert main(quick(out, model=llama)) == 0, capsys.readouterr().err
    first = snapshot(out)
    assert "train_recipe.yaml" in first and "model.safetensors" in first

    monkeypatch.setattr(trainer, "build_trainer", fails)
    with torch_threads(1):
        assert main(quick(out, "--overwrite", model=llama)) == 2
    assert snapshot(out) == first
    assert sorted(os.listdir(out.parent)) == ["out"]

    monkeypatch.setattr(trainer, "build_trainer", real)
    with torch_threads(1):
        assert main(with_override(quick(out, "--overwrite", model=llama), "seed", "3")) == 0
    assert sorted(os.listdir(out.parent)) == ["out"]
    assert yaml.safe_load((out / "train_recipe.yaml").read_text())["seed"] == 3


def test_a_failed_resume_keeps_the_recipe(llama, tmp_path, monkeypatch, capsys):
    import imhi_bench.train.trainer as trainer

    out = tmp_path / "out"
    with torch_threads(1):
        assert main(quick(out, model=llama)) == 0, capsys.readouterr().err
    recipe = (out / "train_recipe.yaml").read_bytes()

    class Stopped:
        def __init__(self, real):
            self.real = real

        def __call__(self, *args, **kwargs):
            t = self.real(*args, **kwargs)
            t.train = lambda **_: (_ for _ in ()).throw(RuntimeError("out of memory"))
            return t

    monkeypatch.setattr(trainer, "build_trainer", Stopped(trainer.build_trainer))
    with torch_threads(1):
        rc = main(with_override(quick(out, "--resume", model=llama), "max_steps", "2"))
    assert rc == 2 and "training stopped: out of memory" in capsys.readouterr().err
    assert (out / "train_recipe.yaml").read_bytes() == recipe


def test_no_validation_rows_trains_without_validation_and_says_so(llama, tmp_path, capsys):
    """A data dir with DR's train file and no val file: known before loading, trained
    without validation, said in one line."""
    import csv

    data = tmp_path / "data"
    rel = split_path("DR", "train", "instruction")
    (data / rel).parent.mkdir(parents=True)
    with open(SHARED_IMHI / rel, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))[:11]
    with open(data / rel, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    argv = with_override(quick(tmp_path / "out", model=llama), "data_dir", str(data))
    with torch_threads(1):
        rc = main(with_override(argv, "f1_steps", "1"))
    out, err = capsys.readouterr()
    assert rc == 0, err[-2000:]
    assert "validation rows: 0" in out and "training without validation" in out


def test_merge_overwrite_swaps_in_a_new_merge(adapter, tmp_path, capsys):
    out = tmp_path / "merged"
    assert main(["train", "merge", "--adapter", str(adapter), "--out", str(out)]) == 0
    assert (out / "imhi_merge.json").is_file() and (out / "model.safetensors").is_file()
    (out / "model.safetensors").write_bytes(b"stale")
    assert main(["train", "merge", "--adapter", str(adapter), "--out", str(out),
                 "--overwrite"]) == 0
    assert (out / "model.safetensors").read_bytes() != b"stale"
    assert sorted(os.listdir(tmp_path)) == ["merged"]  # no staging or old folder left
    capsys.readouterr()


def test_every_baseline_run_gets_its_own_folder(tmp_path, monkeypatch, capsys):
    """The same spec run twice: two folders, two recorded runs, the first's samples as they
    were; and --output naming a recorded run's folder is refused, touching nothing."""
    from sqlalchemy import select

    from imhi_bench.store.engine import open_store
    from imhi_bench.store.tables import Run

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IMHI_TEST_KEY", KEY)
    monkeypatch.setenv("IMHI_CACHE_DIR", str(tmp_path / "cache"))
    db = f"sqlite:///{tmp_path / 'store.sqlite'}"
    with serving() as start:
        srv = start()
        argv = ["baseline", "run", str(SPECS / "chatgpt-zeroshot.yaml"), f"base_url={srv.url}",
                "api_key_env=IMHI_TEST_KEY", "max_new_tokens=8", "tasks=imhi_dr", "limit=2",
                "--db", db]
        assert main(argv) == 0
        (first,) = (tmp_path / "runs").iterdir()
        before = snapshot(first)
        assert main(argv) == 0
        folders = sorted((tmp_path / "runs").iterdir())
        assert len(folders) == 2 and snapshot(first) == before
        with open_store(db)() as s:
            dirs = [r.provenance["run_dir"] for r in
                    s.scalars(select(Run).where(Run.source == "reproduced"))]
        assert sorted(dirs) == [str(f) for f in folders]
        capsys.readouterr()
        assert main([*argv, "--output", str(first)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "recorded in the results store, which is never replaced" in err[0]
    assert snapshot(first) == before
