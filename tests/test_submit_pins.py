"""What a submission may run (issue 21, items 4 and 5): every file the worker may load or
execute is under the submission's content hash, so an edit after submitting (the model's
own code, a chat template in a subfolder, a pickle slipped in) fails the job with the
reason; any pickle file needs --allow-pickle even beside a .safetensors, and without it
the worker loads safetensors only; a 0-byte or unparseable .safetensors is refused at
submit."""

from __future__ import annotations

import hashlib
import pickle
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select
from tiny_models import build_tiny_llama

from imhi_bench.cli.main import main
from imhi_bench.queue.checkpoint import content_hash, pinned_files
from imhi_bench.queue.worker import WorkerOptions, eval_options
from imhi_bench.store.engine import open_store
from imhi_bench.store.tables import Submission

SMOKE = ["--tasks", "imhi_dr", "--limit", "2", "--max-new-tokens", "4", "--bootstrap", "20"]


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("pins-llama"))


@pytest.fixture
def env(tmp_path, monkeypatch) -> dict:
    url = f"sqlite:///{tmp_path / 'q.sqlite'}"
    monkeypatch.setenv("IMHI_DB_URL", url)
    monkeypatch.setenv("IMHI_SUBMISSIONS_DIR", str(tmp_path / "submissions"))
    monkeypatch.setenv("IMHI_CACHE_DIR", str(tmp_path / "cache"))
    return {"url": url, "dir": tmp_path / "submissions"}


def rows(url: str) -> list[Submission]:
    with open_store(url)() as s:
        return list(s.scalars(select(Submission)))


def submit(model: Path, *extra: str, capsys) -> tuple[int, str]:
    rc = main(["submit", "--model", str(model), "--name", model.name, *extra])
    return rc, capsys.readouterr().err


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- item 4


def test_the_hash_covers_code_and_subfolders_not_docs_or_training_checkpoints(llama, tmp_path):
    m = shutil.copytree(llama, tmp_path / "m")
    before = content_hash(m)
    # what no loader reads leaves the pin as it is
    (m / "README.md").write_text("# a card")
    (m / ".gitattributes").write_text("*.bin lfs")
    (m / "checkpoint-10").mkdir()
    (m / "checkpoint-10" / "optimizer.pt").write_bytes(b"state")
    (m / "runs").mkdir()
    (m / "runs" / "events.out.tfevents.1").write_bytes(b"log")
    assert content_hash(m) == before
    # what a loader or the model's own code may read changes it
    for rel, data in [("modeling_tiny.py", "X = 1\n"),
                      ("additional_chat_templates/tool.jinja", "{{ messages }}"),
                      ("generation_config.json", "{}"), ("LICENSE", "MIT")]:
        path = m / rel
        path.parent.mkdir(exist_ok=True)
        path.write_text(data)
        now = content_hash(m)
        assert now != before, rel
        assert rel in pinned_files(m)
        before = now


@pytest.mark.parametrize("edit", ["edit code", "add code", "subfolder template", "add pickle"])
def test_a_file_changed_after_submit_fails_the_job_with_the_reason(edit, llama, tmp_path, env,
                                                                   capsys):
    m = shutil.copytree(llama, tmp_path / "coded")
    (m / "modeling_helper.py").write_text("SCALE = 1.0\n")
    (m / "additional_chat_templates").mkdir()
    (m / "additional_chat_templates" / "tool.jinja").write_text("{{ messages }}")
    rc, err = submit(m, capsys=capsys)
    assert rc == 0, err
    if edit == "edit code":
        (m / "modeling_helper.py").write_text("import os; os.system('touch /tmp/pwned')\n")
    elif edit == "add code":
        (m / "tokenization_helper.py").write_text("X = 2\n")
    elif edit == "subfolder template":
        (m / "additional_chat_templates" / "tool.jinja").write_text("{{ 'injected' }}")
    else:
        (m / "pytorch_model.bin").write_bytes(pickle.dumps({"w": 1}))
    assert main(["worker", "--once", *SMOKE]) == 0
    capsys.readouterr()
    (row,) = rows(env["url"])
    assert row.status == "FAILED"
    assert row.error.startswith(f"the model folder {m} changed after it was submitted "
                                "(content hash sha256:")
    assert row.error.endswith("): submit it again under a new name")
    assert not (env["dir"] / "runs").exists() or not any((env["dir"] / "runs").iterdir())


# --------------------------------------------------------------------------- item 5


@pytest.mark.parametrize("name", ["pytorch_model.bin", "weights.ckpt", "extra/state.pkl",
                                  "model.pth"])
def test_a_pickle_file_needs_allow_pickle_even_beside_safetensors(name, llama, tmp_path, env,
                                                                  capsys):
    m = shutil.copytree(llama, tmp_path / "decoy")
    (m / name).parent.mkdir(exist_ok=True)
    (m / name).write_bytes(pickle.dumps({"payload": 1}))
    before = snapshot(m)
    rc, err = submit(m, capsys=capsys)
    assert rc == 2 and err == (
        f"imhi-bench: error: --model {m} has pickle files ({name}), which can run code when "
        "loaded: delete them (the folder has safetensors weights) or convert them to "
        "safetensors, or pass --allow-pickle if you trust them\n")
    assert snapshot(m) == before and rows(env["url"]) == [] and not env["dir"].exists()
    rc, err = submit(m, "--allow-pickle", capsys=capsys)
    assert rc == 0, err
    assert [r.allow_pickle for r in rows(env["url"])] == [True]


def test_without_allow_pickle_the_worker_loads_safetensors_only(llama, tmp_path, env, capsys):
    from imhi_bench.models.registry import model_args

    rc, err = submit(shutil.copytree(llama, tmp_path / "plain"), capsys=capsys)
    assert rc == 0, err
    (row,) = rows(env["url"])
    sub = {c.key: getattr(row, c.key) for c in Submission.__table__.columns}
    for allowed, expected in ((False, True), (True, None)):
        opts = eval_options({**sub, "allow_pickle": allowed}, WorkerOptions(), tmp_path)
        assert opts.model.safetensors_only is not allowed
        assert model_args(opts.model)[1].get("use_safetensors") is expected
        vllm = model_args(type(opts.model)(**{**vars(opts.model), "backend": "vllm"}))[1]
        assert vllm.get("load_format") == ("safetensors" if expected else None)


def test_transformers_refuses_a_pickle_when_told_safetensors_only(llama, tmp_path):
    """What use_safetensors=True does: a folder with a .bin only fails to load, and the
    pickle is never opened."""
    from transformers import AutoModelForCausalLM

    m = tmp_path / "bin-only"
    m.mkdir()
    for f in llama.iterdir():
        if f.suffix != ".safetensors":
            shutil.copy(f, m / f.name)
    marker = tmp_path / "unpickled"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (m / "pytorch_model.bin").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(OSError):
        AutoModelForCausalLM.from_pretrained(str(m), use_safetensors=True)
    assert not marker.exists()


@pytest.mark.parametrize("content, problem", [
    (b"", "shorter than a safetensors header"),
    (b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!", "its header is not JSON"),
])
def test_an_empty_or_unparseable_safetensors_is_refused_at_submit(content, problem, llama,
                                                                  tmp_path, env, capsys):
    m = shutil.copytree(llama, tmp_path / "damaged")
    (m / "model.safetensors").write_bytes(content)
    before = snapshot(m)
    rc, err = submit(m, capsys=capsys)
    assert rc == 2 and err == (
        f"imhi-bench: error: --model {m}: model.safetensors is not a usable safetensors file "
        f"({problem}): re-save the model with save_pretrained and submit again\n")
    assert snapshot(m) == before and rows(env["url"]) == [] and not env["dir"].exists()

