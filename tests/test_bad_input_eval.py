"""`imhi-bench eval` with input that cannot work (issue 15, and issue 14's hub fast-fail):
each cause fails before the first generation with exit 2 and one line
`imhi-bench: error: ...` naming the problem and the fix, and leaves nothing behind: no run
folder, no store row, no cached generation, the model never loaded.  Plus the store's open
path on damaged files for the other commands, the run folder rolled back when recording
fails, and user-given run names kept inside runs/."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny_models import cached_generations, table_rows, tiny_llama_dir

from imhi_bench.cli.main import main
from imhi_bench.core.errors import ImhiError
from imhi_bench.models.generation_cache import FILE_NAME as CACHE_FILE

ROOT = Path(__file__).resolve().parents[1]
DR = Path("test_data") / "test_instruction" / "DR.csv"
FAST = ["--tasks", "imhi_dr", "--limit", "2", "--max-new-tokens", "4", "--bootstrap", "20"]


@pytest.fixture()
def env(tmp_path, monkeypatch):
    """A private generation cache and store for each test, and a record of model loads."""
    cache = tmp_path / "gen-cache"
    db = tmp_path / "store.sqlite"
    monkeypatch.setenv("IMHI_CACHE_DIR", str(cache))
    monkeypatch.setenv("IMHI_DB_URL", f"sqlite:///{db}")
    return {"cache": cache, "db": db, "out": tmp_path / "out"}


@pytest.fixture()
def no_model_load(monkeypatch):
    """Fails the test's assertion (not the run) if the model is ever loaded."""
    from imhi_bench.runs import evaluate

    loads: list[str] = []
    real = evaluate.load_model

    def spy(mopts):
        loads.append(mopts.model)
        return real(mopts)

    monkeypatch.setattr(evaluate, "load_model", spy)
    return loads


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def store_runs(db: Path) -> int:
    """Runs recorded in a store file (0 when it does not exist or has no runs table)."""
    return table_rows(db, "runs")


def eval_cli(args: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()  # drop what setup printed (building the tiny model)
    rc = main(["eval", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_refused(rc: int, err: str, message: str, env: dict, loads: list | None = None
                   ) -> str:
    """Exit 2, one line starting `imhi-bench: error:` holding `message`, no traceback, and
    nothing written: no run folder, no store row, no generation, no model loaded."""
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("imhi-bench: error: "), err
    assert "Traceback" not in err
    assert message in lines[0], lines[0]
    assert not env["out"].exists()
    assert store_runs(env["db"]) == 0
    assert cached_generations(env["cache"] / CACHE_FILE) == 0
    if loads is not None:
        assert loads == []
    return lines[0]


def copy_model(tmp_path: Path) -> Path:
    dest = tmp_path / "model"
    shutil.copytree(tiny_llama_dir(), dest)
    return dest


# --------------------------------------------------------------------------------------
# Output, store, tasks, options
# --------------------------------------------------------------------------------------

def test_output_under_a_file_fails_at_once(env, no_model_load, tmp_path, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    env["out"] = blocker / "run"
    rc, _, err = eval_cli(["--model", str(tiny_llama_dir()), *FAST, "--output",
                           str(env["out"])], capsys)
    line = assert_refused(rc, err, f"{blocker} is a file, not a folder", env, no_model_load)
    assert "--output" in line
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize("url, message", [
    ("nonsense://foo", "unknown database kind in 'nonsense://foo'"),
    ("sqlite:////proc/imhi-x.db", "cannot open the results store sqlite:////proc/imhi-x.db"),
    ("postgresql+nodriver://u@h/db", "unknown database kind"),
], ids=["unknown-kind", "unopenable-file", "unknown-driver"])
def test_a_store_that_cannot_open_fails_before_the_model_loads(url, message, env,
                                                                no_model_load, capsys):
    rc, _, err = eval_cli(["--model", str(tiny_llama_dir()), *FAST, "--output",
                           str(env["out"]), "--db", url], capsys)
    assert_refused(rc, err, message, env, no_model_load)


def _good_store(path: Path, *, reported: bool = True) -> Path:
    """A store at the current schema, with the paper's rows unless `reported` is off."""
    from imhi_bench.store.engine import open_store, store_engine
    from imhi_bench.store.reported import load_reported

    factory = open_store(str(path))
    if reported:
        load_reported(factory)
    store_engine(factory).dispose()
    return path


def _damage(kind: str, good: Path, dest: Path) -> Path:
    """A store file as users find them: random bytes, a truncated copy, or one page (the
    root page of a table, `table`) overwritten with noise."""
    data = good.read_bytes()
    if kind == "random":
        dest.write_bytes(os.urandom(8192))
    elif kind == "truncated":
        dest.write_bytes(data[:3000])
    else:
        table = kind.split(":")[1]
        with sqlite3.connect(good) as c:
            root = c.execute("SELECT rootpage FROM sqlite_master WHERE name = ?",
                             (table,)).fetchone()[0]
            size = c.execute("PRAGMA page_size").fetchone()[0]
        buf = bytearray(data)
        buf[(root - 1) * size: root * size] = os.urandom(size)
        dest.write_bytes(bytes(buf))
    return dest


DAMAGE = ["random", "truncated", "page:alembic_version", "page:runs"]
DAMAGE_MESSAGE = {"random": "file is not a database"}


@pytest.fixture(scope="module")
def good_store(tmp_path_factory):
    return _good_store(tmp_path_factory.mktemp("store") / "good.sqlite")


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_damaged_store_fails_eval_before_generating(kind, good_store, env, no_model_load,
                                                       tmp_path, capsys):
    bad = _damage(kind, good_store, tmp_path / "bad.sqlite")
    before = bad.read_bytes()
    rc, _, err = eval_cli(["--model", str(tiny_llama_dir()), *FAST, "--output",
                           str(env["out"]), "--db", str(bad)], capsys)
    line = assert_refused(rc, err, f"the results store {bad} is damaged", env, no_model_load)
    assert DAMAGE_MESSAGE.get(kind, "malformed") in line
    assert "restore it from a backup" in line and "--db" in line
    assert bad.read_bytes() == before  # opening it wrote nothing into it


@pytest.mark.parametrize("kind", DAMAGE[:3])
@pytest.mark.parametrize("command", [["status"], ["db", "upgrade"], ["db", "init"],
                                     ["leaderboard", "--csv", "{tmp}/lb.csv"]],
                         ids=["status", "db-upgrade", "db-init", "leaderboard-csv"])
def test_a_damaged_store_is_one_line_for_every_command(command, kind, good_store, tmp_path,
                                                       capsys):
    bad = _damage(kind, good_store, tmp_path / "bad.sqlite")
    capsys.readouterr()
    rc = main([c.format(tmp=tmp_path) for c in command] + ["--db", str(bad)])
    _, err = capsys.readouterr()
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("imhi-bench: error: the results store "), err
    assert f"{bad} is damaged" in lines[0] and "Traceback" not in err
    assert not (tmp_path / "lb.csv").exists()


@pytest.mark.parametrize("args, message", [
    (["--tasks", ""], "--tasks is empty"),
    (["--tasks", " , "], "--tasks is empty"),
    (["--bootstrap", "-5"], "--bootstrap -5: give 0 (no CI) or more resamples"),
    (["--device", "cuda:99"], "--device cuda:99"),
    (["--device", "gpu"], "--device 'gpu' is not a device: use cpu, cuda, cuda:N or mps"),
], ids=["tasks-empty", "tasks-blank", "bootstrap-negative", "device-index", "device-name"])
def test_bad_options_are_refused(args, message, env, no_model_load, capsys):
    rc, _, err = eval_cli(["--model", str(tiny_llama_dir()), "--limit", "2", *args,
                           "--output", str(env["out"])], capsys)
    assert_refused(rc, err, message, env, no_model_load)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_on_a_machine_without_it(env, no_model_load, capsys):
    rc, _, err = eval_cli(["--model", str(tiny_llama_dir()), *FAST, "--device", "cuda",
                           "--output", str(env["out"])], capsys)
    line = assert_refused(rc, err, "--device cuda: ", env, no_model_load)
    assert "use --device cpu" in line and "AssertionError" not in line


# --------------------------------------------------------------------------------------
# Data files
# --------------------------------------------------------------------------------------

def _cut_in_a_quoted_field(text: str) -> str:
    return text[: text.index('"', len(text) // 2) + 40]


def _short_last_row(text: str) -> str:
    head = text.splitlines(keepends=True)
    return head[0] + '"Consider this post: ""a post"" Question: ...\n'


@pytest.mark.parametrize("cut", [_cut_in_a_quoted_field, _short_last_row],
                         ids=["mid-field", "short-row"])
def test_a_truncated_data_file_is_found_before_generation(cut, env, no_model_load,
                                                          imhi_dir, tmp_path, capsys):
    data = tmp_path / "data"
    (data / DR).parent.mkdir(parents=True)
    (data / DR).write_text(cut((imhi_dir / DR).read_text("utf-8")), "utf-8")
    rc, _, err = eval_cli(["--model", str(tiny_llama_dir()), *FAST, "--data-dir", str(data),
                           "--output", str(env["out"])], capsys)
    line = assert_refused(rc, err, f"{data / DR}", env, no_model_load)
    assert "truncated or damaged" in line and "imhi-bench data fetch" in line


def test_read_csv_refuses_truncated_rows(tmp_path):
    from imhi_bench.benchmark.data import read_csv

    f = tmp_path / "x.csv"
    f.write_text('a,b\n1,"two\n')
    with pytest.raises(ImhiError, match="unexpected end of data.*truncated"):
        read_csv(f, ("a", "b"))
    f.write_text("a,b\n1,2\n3\n")
    with pytest.raises(ImhiError, match="line 3 has 1 field"):
        read_csv(f, ("a", "b"))
    f.write_text('a,b\n1,"x, y"\n\n3,4')  # blank lines skipped, no final newline is fine
    assert read_csv(f, ("a", "b")) == [{"a": "1", "b": "x, y"}, {"a": "3", "b": "4"}]


# --------------------------------------------------------------------------------------
# Model weights, adapter
# --------------------------------------------------------------------------------------

def _header_too_large(path: Path) -> None:
    with open(path, "r+b") as f:
        f.write(struct.pack("<Q", 10**12))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("damage, problem", [
    (_header_too_large, "its header is larger than the file"),
    (_truncate, "it is truncated"),
], ids=["header-too-large", "truncated"])
def test_damaged_weights_name_the_file(damage, problem, env, no_model_load, tmp_path, capsys):
    model = copy_model(tmp_path)
    damage(model / "model.safetensors")
    rc, _, err = eval_cli(["--model", str(model), *FAST, "--output", str(env["out"])], capsys)
    line = assert_refused(rc, err, f"{model / 'model.safetensors'} is damaged ({problem}",
                          env, no_model_load)
    assert "re-download or re-save the model" in line


def test_weights_that_fail_inside_the_loader_are_one_line_too(env, tmp_path, monkeypatch,
                                                              capsys):
    """What the header check lets through (here: switched off) fails in the loader with
    safetensors' own error type, which derives from Exception only."""
    from imhi_bench.models import options

    monkeypatch.setattr(options, "check_safetensors", lambda *a: None)
    model = copy_model(tmp_path)
    _header_too_large(model / "model.safetensors")
    rc, _, err = eval_cli(["--model", str(model), *FAST, "--output", str(env["out"])], capsys)
    line = assert_refused(rc, err, f"cannot load model {model}", env)
    assert "is damaged (truncated or not safetensors): re-download or re-save" in line
    assert "header too large" in line


def test_an_adapter_folder_without_weights(env, no_model_load, tmp_path, capsys):
    adapter = tmp_path / "lora"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "base_model_name_or_path": str(tiny_llama_dir()), "r": 4,
         "target_modules": ["q_proj"], "task_type": "CAUSAL_LM"}))
    rc, _, err = eval_cli(["--model", str(tiny_llama_dir()), "--adapter", str(adapter), *FAST,
                           "--output", str(env["out"])], capsys)
    line = assert_refused(rc, err, f"--adapter {adapter} has no adapter_model.safetensors or "
                          "adapter_model.bin", env, no_model_load)
    assert "Repo id" not in line


# --------------------------------------------------------------------------------------
# The Hugging Face hub
# --------------------------------------------------------------------------------------

HUB_CASES = [
    (["--model", "someorg/somemodel"], "--model someorg/somemodel: cannot reach the Hugging "
     "Face hub at http://127.0.0.1:{port}"),
    (["--model", "{llama}", "--quality", "bart"],
     "--bart-model facebook/bart-large-cnn: cannot reach the Hugging Face hub"),
    (["--model", "{llama}", "--quality", "bertscore"],
     "--bertscore-model roberta-large: cannot reach the Hugging Face hub"),
]


@pytest.mark.parametrize("args, message", HUB_CASES, ids=["model", "bart", "bertscore"])
def test_an_unreachable_hub_fails_in_one_line(args, message, tmp_path):
    """With HF_HUB_OFFLINE unset and the hub refusing connections, a hub id fails at once
    (huggingface_hub alone retries ~40 s per file) with one line naming HF_HUB_OFFLINE and
    local folders.  A subprocess: huggingface_hub reads its endpoint at import."""
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HOME=str(tmp_path / "hf"),
               IMHI_CACHE_DIR=str(tmp_path / "cache"),
               IMHI_DB_URL=f"sqlite:///{tmp_path / 'store.sqlite'}")
    fill = {"llama": str(tiny_llama_dir()), "port": port}
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "imhi_bench", "eval",
                        *[a.format(**fill) for a in args], *FAST, "--output", str(out)],
                       capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("imhi-bench: error: "), r.stderr[-2000:]
    assert message.format(**fill) in lines[0]
    assert "HF_HUB_OFFLINE" in lines[0] and "local" in lines[0]
    assert "Retrying" not in r.stderr
    assert not out.exists() and store_runs(tmp_path / "store.sqlite") == 0
    assert cached_generations(tmp_path / "cache" / CACHE_FILE) == 0


def test_a_hub_id_not_cached_while_offline(env, no_model_load, capsys):
    # the tests run with HF_HUB_OFFLINE=1 and an empty HF_HOME (conftest)
    rc, _, err = eval_cli(["--model", "someorg/somemodel", *FAST, "--output", str(env["out"])],
                          capsys)
    line = assert_refused(rc, err, "--model someorg/somemodel is not in the Hugging Face cache "
                          "and the hub is offline (HF_HUB_OFFLINE)", env, no_model_load)
    assert "local model folder" in line


@pytest.fixture()
def unreachable_hub(monkeypatch):
    """The hub online as far as huggingface_hub knows, and refusing connections."""
    from huggingface_hub import constants

    from imhi_bench.models import loading

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{free_port()}")
    loading.hub_unreachable.cache_clear()
    yield constants.ENDPOINT
    loading.hub_unreachable.cache_clear()


def test_quality_models_fail_fast_when_the_hub_is_unreachable(unreachable_hub):
    """BERTScore's and BART-score's loaders, as `score --quality` reaches them."""
    from imhi_bench.scoring.quality.bart_model import load_bart
    from imhi_bench.scoring.quality.bertscore import bertscore_f1

    with pytest.raises(ImhiError, match=f"cannot reach the Hugging Face hub at "
                       f"{unreachable_hub}.*HF_HUB_OFFLINE") as e:
        bertscore_f1(["a"], ["b"], model="someorg/bert", progress=False)
    assert "\n" not in str(e.value) and "--bertscore-model someorg/bert" in str(e.value)
    with pytest.raises(ImhiError, match="--bart-model someorg/bart: cannot reach") as e:
        load_bart("someorg/bart")
    assert "\n" not in str(e.value)


def test_a_reachable_hub_passes_the_probe(monkeypatch):
    """Any HTTP answer, even 404, is a reachable hub: only silence fails."""
    import http.server
    import threading

    from imhi_bench.models import loading

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):  # noqa: N802 - the http.server hook name
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        loading.hub_unreachable.cache_clear()
        assert loading.hub_unreachable(url) is None
        assert "refused" in (loading.hub_unreachable(f"http://127.0.0.1:{free_port()}")
                             or "").lower()
    finally:
        server.shutdown()
        loading.hub_unreachable.cache_clear()


# --------------------------------------------------------------------------------------
# Names, and recording after writing
# --------------------------------------------------------------------------------------

def test_folder_names_stay_inside_runs():
    from imhi_bench.runs.folder import folder_name

    assert folder_name("../../x") == "_.._x"
    assert folder_name("/etc/passwd") == "_etc_passwd"
    assert folder_name("..") == "run" and folder_name(" ") == "run"
    assert folder_name(".hidden") == "hidden"
    assert folder_name("llama-7b+lora-hf-20240101") == "llama-7b+lora-hf-20240101"


def test_a_given_name_is_made_a_folder_name_like_a_default_one(env, tmp_path, monkeypatch,
                                                               capsys):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    rc, out, err = eval_cli(["--model", str(tiny_llama_dir()), *FAST, "--name", "../../x",
                             "--no-db"], capsys)
    assert rc == 0, err
    assert (work / "runs" / "_.._x" / "imhi_results.json").is_file()
    assert not (tmp_path / "x").exists() and not (tmp_path / "a" / "x").exists()
    assert sorted(p.name for p in (work / "runs").iterdir()) == ["_.._x"]
    report = json.loads((work / "runs" / "_.._x" / "imhi_results.json").read_text())
    assert report["provenance"]["name"] == "../../x"  # the name itself is kept as given


def test_a_run_that_cannot_be_recorded_leaves_no_folder(env, tmp_path, monkeypatch, capsys):
    """The store opens (the preflight passes) but is locked by another writer when the run
    is recorded: the record fails, and the run folder written just before goes with it."""
    from imhi_bench.store import engine

    _good_store(env["db"], reported=False)
    monkeypatch.setattr(engine, "SQLITE_BUSY_TIMEOUT_MS", 300)
    locker = sqlite3.connect(env["db"], isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")  # holds the write lock; readers still read (WAL)
    try:
        rc, _, err = eval_cli(["--model", str(tiny_llama_dir()), *FAST, "--output",
                               str(env["out"])], capsys)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert rc == 2, err
    # the run generated (progress bars above); the error is the last line, and the only one
    last = err.strip().splitlines()[-1]
    assert last.startswith("imhi-bench: error: could not write to the results store"), err
    assert err.count("imhi-bench: error:") == 1 and "Traceback" not in err
    assert f"the run folder {env['out']} was removed as well" in last
    assert "generates nothing again" in last
    assert not env["out"].exists()
    assert not list(env["out"].parent.glob(".out.*"))  # no staging or old copy left
    assert store_runs(env["db"]) == 0
    assert cached_generations(env["cache"] / CACHE_FILE) == 2  # what a re-run reuses
