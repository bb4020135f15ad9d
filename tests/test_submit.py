"""`imhi-bench submit`: what is checked before anything is queued (names, model folders,
pickle weights, remote code, adapters and their base, the hub), revision pinning,
deduplication, and the manifest + store row written together or not at all."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session
from tiny_models import build_tiny_bart, build_tiny_llama, build_tiny_lora

from imhi_bench.benchmark.sets import NON_CLINICAL_NOTICE
from imhi_bench.cli.main import main
from imhi_bench.core.errors import ImhiError
from imhi_bench.queue import checkpoint, submission
from imhi_bench.store.engine import open_store
from imhi_bench.store.tables import Submission

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("sub-llama"))


@pytest.fixture(scope="module")
def bart(tmp_path_factory) -> Path:
    return build_tiny_bart(tmp_path_factory.mktemp("sub-bart"))


@pytest.fixture(scope="module")
def lora(tmp_path_factory, llama) -> Path:
    return build_tiny_lora(llama, tmp_path_factory.mktemp("sub-lora"))


@pytest.fixture
def env(tmp_path, monkeypatch) -> dict:
    """A private store and submissions dir, both from the environment."""
    url = f"sqlite:///{tmp_path / 'q.sqlite'}"
    folder = tmp_path / "submissions"
    monkeypatch.setenv("IMHI_DB_URL", url)
    monkeypatch.setenv("IMHI_SUBMISSIONS_DIR", str(folder))
    return {"url": url, "dir": folder}


def submit(*args: str, capsys) -> tuple[int, str, str]:
    rc = main(["submit", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def queued(url: str) -> list[dict]:
    factory = open_store(url)
    with factory() as s:
        return [{c.key: getattr(r, c.key) for c in Submission.__table__.columns}
                for r in s.scalars(select(Submission).order_by(Submission.submitted))]


def manifests(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def assert_refused(rc: int, err: str, pattern: str, env: dict) -> None:
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("imhi-bench: error: "), err
    assert pattern in lines[0], lines[0]
    assert queued(env["url"]) == [] and manifests(env["dir"]) == []


# --------------------------------------------------------------------------- accepted


def test_local_folder_is_checked_pinned_and_queued(llama, env, capsys):
    rc, out, err = submit("--model", str(llama), "--name", "Tiny-Llama_1.0+x", "--type",
                          "fine-tuned", "--license", "mit", "--submitter", "lab@example.org",
                          "--training-data", "IMHI", capsys=capsys)
    assert rc == 0, err
    [row] = queued(env["url"])
    key = submission.dedupe_key(str(llama), row["revision"], "fp32", "hf", local=True)
    assert row["id"] == f"tiny-llama_1.0+x-{key[:10]}" and row["dedupe_key"] == key
    assert row["status"] == "PENDING" and row["attempts"] == 0 and row["worker"] is None
    assert row["model"] == str(llama.resolve()) and row["adapter"] == ""
    # pinned by content: config, tokenizer and weights
    assert row["revision"] == checkpoint.content_hash(llama)
    assert row["revision"].startswith("sha256:") and len(row["revision"]) == 71
    assert checkpoint.pinned_files(llama) == [
        "config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
        "tokenizer_config.json"]
    assert (row["precision"], row["backend"]) == ("fp32", "hf")  # the config's dtype
    assert row["params"] > 10_000 and row["needs_remote_code"] is False
    assert (row["type"], row["training_data"], row["license"], row["submitter"]) == \
        ("fine-tuned", "IMHI", "mit", "lab@example.org")
    [path] = manifests(env["dir"])
    assert path.name == f"{row['id']}.json" and row["manifest"] == str(path)
    manifest = json.loads(path.read_text())
    assert {k: manifest[k] for k in ("id", "name", "model", "revision", "precision",
                                     "backend", "dedupe_key")} == \
        {k: row[k] for k in ("id", "name", "model", "revision", "precision", "backend",
                             "dedupe_key")}
    assert manifest["notice"] == NON_CLINICAL_NOTICE
    assert f"queued {row['id']}" in out and NON_CLINICAL_NOTICE in out


def test_precision_backend_and_a_seq2seq_model(llama, bart, env, capsys):
    rc, _, err = submit("--model", str(llama), "--name", "half", "--precision", "bf16",
                        capsys=capsys)
    assert rc == 0, err
    rc, _, err = submit("--model", str(bart), "--name", "bart", capsys=capsys)
    assert rc == 0, err
    rows = {r["name"]: r for r in queued(env["url"])}
    assert rows["half"]["precision"] == "bf16"
    assert rows["bart"]["backend"] == "hf-seq2seq"  # an encoder-decoder, found from config
    rc, _, err = submit("--model", str(bart), "--name", "bart2", "--backend", "hf",
                        capsys=capsys)
    assert rc == 2 and "is an encoder-decoder (bart): use --backend hf-seq2seq" in err
    rc, _, err = submit("--model", str(llama), "--name", "l2", "--backend", "hf-seq2seq",
                        capsys=capsys)
    assert rc == 2 and "is not an encoder-decoder" in err
    assert len(queued(env["url"])) == 2


def test_adapter_with_its_base_from_the_adapter_config_or_model(llama, lora, env, capsys):
    # --model ADAPTER: the base comes from adapter_config.json (the tiny llama folder)
    rc, out, err = submit("--model", str(lora), "--name", "lora-a", capsys=capsys)
    assert rc == 0, err
    [row] = queued(env["url"])
    assert row["model"] == str(llama.resolve()) and row["adapter"] == str(lora.resolve())
    assert row["adapter_revision"] == checkpoint.content_hash(lora)
    assert row["revision"] == checkpoint.content_hash(llama)
    assert row["base_model"] == str(llama.resolve())
    assert "adapter" in out
    # the same adapter and base given as --model BASE --adapter ADAPTER is a duplicate
    rc, _, err = submit("--model", str(llama), "--adapter", str(lora), "--name", "lora-b",
                        capsys=capsys)
    assert rc == 2 and "duplicate" in err and row["id"] in err
    assert len(queued(env["url"])) == 1


def test_adapter_without_a_base_is_refused(lora, tmp_path, env, capsys):
    orphan = copy_model(lora, tmp_path / "orphan")
    cfg = json.loads((orphan / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = None
    (orphan / "adapter_config.json").write_text(json.dumps(cfg))
    rc, _, err = submit("--model", str(orphan), "--name", "orphan", capsys=capsys)
    assert_refused(rc, err, "needs its base model: pass --base-model", env)
    # a base that is no model is refused too (it is validated like any model)
    rc, _, err = submit("--model", str(orphan), "--base-model", str(tmp_path),
                        "--name", "orphan", capsys=capsys)
    assert_refused(rc, err, "has no config.json", env)


def test_pickle_weights_need_allow_pickle(llama, tmp_path, env, capsys):
    import torch
    from safetensors.torch import load_file

    pickled = copy_model(llama, tmp_path / "pickled")
    torch.save(load_file(pickled / "model.safetensors"), pickled / "pytorch_model.bin")
    (pickled / "model.safetensors").unlink()
    rc, _, err = submit("--model", str(pickled), "--name", "pickled", capsys=capsys)
    assert_refused(rc, err, "has pickle files (pytorch_model.bin), which can run code when "
                   "loaded: convert", env)
    assert "--allow-pickle" in err
    rc, _, err = submit("--model", str(pickled), "--name", "pickled", "--allow-pickle",
                        capsys=capsys)
    assert rc == 0, err
    assert queued(env["url"])[0]["allow_pickle"] is True


# --------------------------------------------------------------------------- refused


@pytest.mark.parametrize("name, reason", [
    ("../../x", "contains '/'"),
    ("<script>", "contains '<' '>'"),
    ("a b", "contains ' '"),
    ("..", "must start with a letter or digit"),
    ("-rf", "must start with a letter or digit"),
    ("x" * 101, "use at most 100"),
    ("modèle", "contains 'è'"),
    ("", "--name is empty"),
])
def test_bad_names_are_refused_in_one_line(name, reason, llama, env, capsys):
    rc, _, err = submit("--model", str(llama), f"--name={name}", capsys=capsys)
    assert_refused(rc, err, reason, env)


@pytest.mark.parametrize("args, reason", [
    (["--precision", "fp8"], "--precision 'fp8': use one of bf16, fp16, fp32"),
    (["--precision", ""], "--precision '': use one of"),
    (["--backend", "openai-chat"], "--backend 'openai-chat': submissions are checkpoints; use"),
    (["--backend", "HF"], "--backend 'HF'"),
    (["--name", "a/b"], "contains '/'"),
    (["--model", "/nonexistent/model"], "--model /nonexistent/model: no such folder"),
    (["--model", " "], "--model is empty"),
    (["--adapter", "/nonexistent/adapter"], "--adapter /nonexistent/adapter: no such folder"),
])
def test_bad_options_fail_in_one_line_before_the_store_is_opened(args, reason, llama, env,
                                                                 capsys):
    """One line (not argparse's usage + error), before the store is created or the
    checkpoint loaded."""
    rc, _, err = submit("--model", str(llama), "--name", "opts", *args, capsys=capsys)
    assert not Path(env["url"].removeprefix("sqlite:///")).exists()
    assert_refused(rc, err, reason, env)


def test_duplicate_prints_the_existing_id_and_status_and_queues_nothing(llama, tmp_path, env,
                                                                         capsys):
    assert submit("--model", str(llama), "--name", "first", capsys=capsys)[0] == 0
    [row] = queued(env["url"])
    before = manifests(env["dir"])
    # a copy of the same folder elsewhere has the same content: still a duplicate
    for model in (str(llama), str(copy_model(llama, tmp_path / "copy"))):
        rc, out, err = submit("--model", model, "--name", "second", capsys=capsys)
        assert rc == 2 and out == ""
        assert err.count("\n") == 1
        assert f"duplicate: submission {row['id']} (first)" in err and "is PENDING" in err
    assert len(queued(env["url"])) == 1 and manifests(env["dir"]) == before
    # another checkpoint under a taken name is refused as well
    other = build_tiny_llama(tmp_path / "other", seed=7)
    rc, _, err = submit("--model", str(other), "--name", "first", capsys=capsys)
    assert rc == 2 and "--name first is taken by submission" in err
    assert len(queued(env["url"])) == 1


def test_remote_code_configs_are_refused_unless_an_operator_allows_them(llama, tmp_path, env,
                                                                        capsys):
    auto_map = copy_model(llama, tmp_path / "auto-map")
    cfg = json.loads((auto_map / "config.json").read_text())
    cfg["auto_map"] = {"AutoConfig": "configuration_evil.EvilConfig",
                       "AutoModelForCausalLM": "modeling_evil.EvilModel"}
    (auto_map / "config.json").write_text(json.dumps(cfg))
    # evil code beside it: loading it would run it
    marker = tmp_path / "ran"
    (auto_map / "configuration_evil.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    rc, _, err = submit("--model", str(auto_map), "--name", "evil", capsys=capsys)
    assert_refused(rc, err, "needs remote code: its config.json has auto_map", env)

    unknown = copy_model(llama, tmp_path / "unknown-type")
    cfg = json.loads((unknown / "config.json").read_text())
    cfg["model_type"] = "mental_llama_custom"
    (unknown / "config.json").write_text(json.dumps(cfg))
    rc, _, err = submit("--model", str(unknown), "--name", "custom", capsys=capsys)
    assert_refused(rc, err, "model_type 'mental_llama_custom' is not built into transformers",
                   env)

    tok = copy_model(llama, tmp_path / "custom-tokenizer")
    tcfg = json.loads((tok / "tokenizer_config.json").read_text())
    tcfg["auto_map"] = {"AutoTokenizer": ["tokenization_evil.EvilTokenizer", None]}
    (tok / "tokenizer_config.json").write_text(json.dumps(tcfg))
    rc, _, err = submit("--model", str(tok), "--name", "custom-tok", capsys=capsys)
    assert_refused(rc, err, "tokenizer_config.json has auto_map", env)

    # an operator may queue it; it is flagged, and no code ran at submit time
    rc, out, err = submit("--model", str(auto_map), "--name", "evil", "--allow-remote-code",
                          capsys=capsys)
    assert rc == 0, err
    assert queued(env["url"])[0]["needs_remote_code"] is True
    assert "--trust-remote-code" in out and not marker.exists()


@pytest.mark.parametrize("make, args, reason", [
    (lambda d: d, [], "has no config.json, so it is not a Hugging Face model folder"),
    (lambda d: (d / "f.txt").write_text("x") and d / "f.txt", [], "is a file"),
    (lambda d: d / "missing" / "model", [], "no such folder"),
    (lambda d: (d / "config.json").write_text("{not json") and d, [],
     "config.json is not valid JSON"),
])
def test_things_that_are_not_models_are_refused(make, args, reason, tmp_path, env, capsys):
    folder = tmp_path / "thing"
    folder.mkdir()
    target = make(folder)
    rc, _, err = submit("--model", str(target), "--name", "thing", *args, capsys=capsys)
    assert_refused(rc, err, reason, env)


def test_broken_checkpoints_are_refused(llama, tmp_path, env, capsys):
    no_weights = copy_model(llama, tmp_path / "no-weights")
    (no_weights / "model.safetensors").unlink()
    rc, _, err = submit("--model", str(no_weights), "--name", "nw", capsys=capsys)
    assert_refused(rc, err, "has no weight files", env)

    no_tok = copy_model(llama, tmp_path / "no-tokenizer")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (no_tok / f).unlink()
    rc, _, err = submit("--model", str(no_tok), "--name", "nt", capsys=capsys)
    assert_refused(rc, err, "transformers cannot load its tokenizer", env)

    bad_cfg = copy_model(llama, tmp_path / "bad-config")
    (bad_cfg / "config.json").write_text(json.dumps({"hidden_size": 8}))  # no model_type
    rc, _, err = submit("--model", str(bad_cfg), "--name", "bc", capsys=capsys)
    assert_refused(rc, err, "transformers cannot load its config", env)

    sharded = copy_model(llama, tmp_path / "sharded")
    (sharded / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"a": "model-00001-of-00002.safetensors",
                        "b": "model-00002-of-00002.safetensors"}}))
    rc, _, err = submit("--model", str(sharded), "--name", "sh", capsys=capsys)
    assert_refused(rc, err, "lacks model-00001-of-00002.safetensors", env)

    rc, _, err = submit("--model", str(llama), "--name", "rev", "--revision", "main",
                        capsys=capsys)
    assert_refused(rc, err, "--revision is for hub ids", env)


# --------------------------------------------------------------------------- the hub


def test_unreachable_hub_is_one_line_and_queues_nothing(env, capsys):
    # tests run with HF_HUB_OFFLINE=1: the real HfApi().model_info call fails fast
    rc, _, err = submit("--model", "klyang/MentaLLaMA-chat-7B", "--name", "mentallama",
                        capsys=capsys)
    assert_refused(rc, err, "cannot reach the Hugging Face hub to pin "
                   "klyang/MentaLLaMA-chat-7B to a commit", env)
    rc, _, err = submit("--model", "klyang/MentaLLaMA-chat-7B", "--name", "mentallama",
                        "--revision", COMMIT, capsys=capsys)
    assert_refused(rc, err, f"commit {COMMIT[:12]} is not in the local Hugging Face cache", env)


def fake_snapshot(model_id: str, commit: str, src: Path) -> Path:
    """`src` placed in the Hugging Face cache as `model_id` at `commit`."""
    from huggingface_hub import constants

    repo = Path(constants.HF_HUB_CACHE) / ("models--" + model_id.replace("/", "--"))
    snap = repo / "snapshots" / commit
    if not snap.exists():
        shutil.copytree(src, snap)
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text(commit)
    return snap


def test_a_full_commit_in_the_local_cache_is_its_own_pin_when_offline(llama, env, capsys):
    fake_snapshot("imhi-test/tiny-llama", COMMIT, llama)
    rc, _, err = submit("--model", "imhi-test/tiny-llama", "--name", "hub-tiny",
                        "--revision", COMMIT, capsys=capsys)
    assert rc == 0, err
    [row] = queued(env["url"])
    assert (row["model"], row["revision"]) == ("imhi-test/tiny-llama", COMMIT)
    key = submission.dedupe_key("imhi-test/tiny-llama", COMMIT, "fp32", "hf", local=False)
    assert row["dedupe_key"] == key


def test_a_reachable_hub_resolves_the_revision_to_a_commit(llama, env, capsys, monkeypatch):
    from types import SimpleNamespace

    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    commit = "fedcba9876543210fedcba9876543210fedcba98"
    snap = fake_snapshot("imhi-test/hub-llama", commit, llama)
    asked = []

    def model_info(self, repo_id, revision=None, **kw):
        asked.append((repo_id, revision))
        if repo_id != "imhi-test/hub-llama":
            import httpx2

            url = f"https://huggingface.co/api/models/{repo_id}"
            response = httpx2.Response(404, request=httpx2.Request("GET", url))
            raise RepositoryNotFoundError("404 Client Error: Repository Not Found",
                                          response=response)
        return SimpleNamespace(sha=commit, siblings=[SimpleNamespace(rfilename=f.name)
                                                     for f in snap.iterdir()],
                               safetensors=SimpleNamespace(total=1234))

    monkeypatch.setattr(HfApi, "model_info", model_info)
    rc, _, err = submit("--model", "imhi-test/hub-llama", "--name", "hub", "--revision",
                        "main", capsys=capsys)
    assert rc == 0, err
    assert asked == [("imhi-test/hub-llama", "main")]
    [row] = queued(env["url"])
    assert (row["revision"], row["params"]) == (commit, 1234)
    # naming the same commit directly is the same submission
    rc, _, err = submit("--model", "imhi-test/hub-llama", "--name", "hub2", "--revision",
                        commit, capsys=capsys)
    assert rc == 2 and "duplicate" in err
    rc, _, err = submit("--model", "imhi-test/nope", "--name", "nope", capsys=capsys)
    assert rc == 2 and "no such model on the Hugging Face hub" in err


# --------------------------------------------------------------------------- atomicity


def test_a_failed_manifest_write_leaves_no_row(llama, tmp_path, env, capsys, monkeypatch):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the submissions dir should be")
    rc, _, err = submit("--model", str(llama), "--name", "m", "--submissions-dir",
                        str(blocker / "sub"), capsys=capsys)
    assert rc == 2 and err.count("\n") == 1
    assert "cannot write the manifest" in err and "--submissions-dir" in err
    assert queued(env["url"]) == []


def test_a_failed_commit_leaves_no_manifest(llama, env, capsys):
    def boom(session):
        # after the row is flushed and the manifest written, as a lost connection would
        if any(isinstance(o, Submission) for o in session.identity_map.values()):
            raise ImhiError("simulated store failure at commit")

    event.listen(Session, "before_commit", boom)
    try:
        rc, _, err = submit("--model", str(llama), "--name", "m", capsys=capsys)
    finally:
        event.remove(Session, "before_commit", boom)
    assert rc == 2 and "simulated store failure" in err
    factory = open_store(env["url"])
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Submission)) == 0
    assert manifests(env["dir"]) == []
    assert not list(env["dir"].glob(".*.tmp")) if env["dir"].is_dir() else True


def test_ids_are_safe_file_names():
    key = "ab" * 32
    assert submission.submission_id("My-Model_7B", key) == "my-model_7b-abababab" + "ab"
    with pytest.raises(ImhiError):
        submission.submission_id("../x", key)
    with pytest.raises(ImhiError, match="not a plain file name"):
        submission.manifest_path(Path("/tmp/q"), "../escape")


def test_submissions_dir_default_env_and_flag(tmp_path, monkeypatch):
    monkeypatch.delenv("IMHI_SUBMISSIONS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert submission.submissions_dir() == tmp_path / "submissions"
    monkeypatch.setenv("IMHI_SUBMISSIONS_DIR", str(tmp_path / "env"))
    assert submission.submissions_dir() == tmp_path / "env"
    assert submission.submissions_dir(str(tmp_path / "flag")) == tmp_path / "flag"
