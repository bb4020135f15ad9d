"""Backends of `imhi-bench eval`: the lm-eval model arguments each builds, and the checks
that turn bad input into one line before any model loads."""

from __future__ import annotations

import json
import socket
from importlib.util import find_spec

import pytest

from imhi_bench.core.errors import ImhiError
from imhi_bench.models import device, registry
from imhi_bench.models.identity import model_config_sha256, model_identity
from imhi_bench.models.options import ModelOptions, check
from imhi_bench.models.registry import model_args


@pytest.fixture()
def model_dir(tmp_path):
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 8}))
    (d / "model.safetensors").write_bytes(b"weights")
    return d


@pytest.fixture()
def adapter_dir(tmp_path, model_dir):
    d = tmp_path / "lora"
    d.mkdir()
    (d / "adapter_config.json").write_text(json.dumps(
        {"base_model_name_or_path": str(model_dir), "r": 8, "peft_type": "LORA"}))
    (d / "adapter_model.safetensors").write_bytes(b"lora")
    return d


def test_hf_args(model_dir, adapter_dir):
    name, args = model_args(ModelOptions(model=str(model_dir), adapter=str(adapter_dir),
                                         revision="v1", dtype="bfloat16", batch_size="8",
                                         device="cpu"))
    assert name == "imhi-hf"
    assert args == {"pretrained": str(model_dir), "backend": "causal", "dtype": "bfloat16",
                    "batch_size": 8, "device": "cpu", "trust_remote_code": False,
                    "revision": "v1", "peft": str(adapter_dir)}


def test_seq2seq_args_and_sdpa_without_flash_attn(model_dir):
    name, args = model_args(ModelOptions(model=str(model_dir), backend="hf-seq2seq"))
    assert name == "imhi-hf" and args["backend"] == "seq2seq" and args["batch_size"] == "auto"
    if find_spec("flash_attn") is None:
        # no flash-attn here: transformers' default (SDPA) attention, nothing forced
        assert not device.flash_attention_available()
        assert "attn_implementation" not in args


def test_vllm_args(model_dir, adapter_dir):
    name, args = model_args(ModelOptions(
        model=str(model_dir), backend="vllm", adapter=str(adapter_dir), dtype="float16",
        tensor_parallel_size=2, data_parallel_size=4, gpu_memory_utilization=0.8,
        max_model_len=4096, seed=7, revision="main"))
    assert name == "vllm"
    assert args == {
        "pretrained": str(model_dir), "dtype": "float16", "batch_size": "auto",
        "tensor_parallel_size": 2, "data_parallel_size": 4, "gpu_memory_utilization": 0.8,
        "seed": 7, "trust_remote_code": False, "revision": "main", "max_model_len": 4096,
        "lora_local_path": str(adapter_dir.resolve()), "max_lora_rank": 8,
    }


@pytest.mark.skipif(find_spec("vllm") is not None, reason="vLLM is installed here")
def test_vllm_missing_is_a_clear_error(model_dir):
    with pytest.raises(ImhiError,
                       match=r"needs vLLM.*pip install -c constraints/gpu.txt '\.\[vllm,train\]'"):
        check(ModelOptions(model=str(model_dir), backend="vllm"))


def test_api_args_hold_the_variable_name_never_the_key(monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-very-secret")
    name, args = model_args(ModelOptions(model="gpt-x", backend="openai-chat",
                                         base_url="http://h/v1", api_key_env="MY_KEY",
                                         num_concurrent=3))
    assert name == "imhi-openai-chat"
    assert args["api_key_env"] == "MY_KEY" and args["num_concurrent"] == 3
    assert "sk-very-secret" not in json.dumps(args)
    assert model_args(ModelOptions(model="m", backend="openai-completions"))[0] == \
        "imhi-openai-completions"


def test_bad_model_folders(tmp_path, model_dir, adapter_dir):
    with pytest.raises(ImhiError, match="no such folder"):
        check(ModelOptions(model=str(tmp_path / "missing")))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImhiError, match="has no config.json"):
        check(ModelOptions(model=str(empty)))
    # an adapter passed as the model: say which base to pass
    with pytest.raises(ImhiError, match=f"is a PEFT adapter.*--model {model_dir}"):
        check(ModelOptions(model=str(adapter_dir)))
    with pytest.raises(ImhiError, match="not a PEFT adapter folder.*full model"):
        check(ModelOptions(model=str(model_dir), adapter=str(model_dir)))
    with pytest.raises(ImhiError, match="--adapter .*no such folder"):
        check(ModelOptions(model=str(model_dir), adapter=str(tmp_path / "nope")))
    # hub ids are not checked on disk
    check(ModelOptions(model="klyang/MentaLLaMA-chat-7B"))


def test_bad_options(model_dir):
    for kw, msg in (({"dtype": "int3"}, "unknown --dtype"),
                    ({"batch_size": "0"}, "--batch-size"),
                    ({"batch_size": "many"}, "--batch-size"),
                    ({"base_url": "http://x/v1"}, "--base-url is for the API backends")):
        with pytest.raises(ImhiError, match=msg):
            check(ModelOptions(model=str(model_dir), **kw))


def test_api_checks(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("NOT_SET_VAR", raising=False)
    with pytest.raises(ImhiError, match="OPENAI_API_KEY is not set"):
        check(ModelOptions(model="gpt-x", backend="openai-chat"))
    with pytest.raises(ImhiError, match="NOT_SET_VAR is not set"):
        check(ModelOptions(model="m", backend="openai-chat", api_key_env="NOT_SET_VAR",
                           base_url="http://127.0.0.1:1/v1"))
    with pytest.raises(ImhiError, match="--adapter needs a local backend"):
        check(ModelOptions(model="m", backend="openai-chat", adapter="x"))
    with pytest.raises(ImhiError, match="not an http"):
        check(ModelOptions(model="m", backend="openai-chat", base_url="ftp://x"))
    # a port nothing listens on: fails at once, before any retry
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(ImhiError, match=f"cannot reach the API at http://127.0.0.1:{port}/v1"):
        check(ModelOptions(model="m", backend="openai-completions",
                           base_url=f"http://127.0.0.1:{port}/v1"))


def test_identity_changes_with_what_changes_generations(model_dir, adapter_dir):
    base = model_identity(ModelOptions(model=str(model_dir)))
    assert base["config_sha256"] and base["weights"]
    assert model_identity(ModelOptions(model=str(model_dir))) == base
    for kw in ({"revision": "v2"}, {"dtype": "float16"}, {"adapter": str(adapter_dir)}):
        assert model_identity(ModelOptions(model=str(model_dir), **kw)) != base
    (model_dir / "model.safetensors").write_bytes(b"retrained weights")
    assert model_identity(ModelOptions(model=str(model_dir))) != base
    # config hash ignores key order and spacing
    cfg = json.loads((model_dir / "config.json").read_text())
    before = model_config_sha256(ModelOptions(model=str(model_dir)))
    (model_dir / "config.json").write_text(json.dumps(dict(reversed(cfg.items())), indent=4))
    assert model_config_sha256(ModelOptions(model=str(model_dir))) == before


def test_registry_names_each_backend_class_lazily():
    """Every backend resolves to an lm-eval model class through its "module:Class" string,
    and only when asked: importing the registry imports no backend module."""
    import subprocess
    import sys

    code = ("import sys; from imhi_bench.models import registry, options; "
            "print(any(m in sys.modules for m in ('imhi_bench.models.hf', "
            "'imhi_bench.models.openai', 'torch', 'openai', 'lm_eval')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    from lm_eval.api.model import LM

    for name in registry.BACKENDS:
        if name == "vllm" and find_spec("vllm") is None:
            continue  # GPU-only extra: its class module imports vllm
        cls = registry.model_class(name)
        assert issubclass(cls, LM), name
    with pytest.raises(ImhiError, match="unknown backend 'nope'"):
        registry.model_class("nope")
