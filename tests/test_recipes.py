"""The shipped trainer recipes (imhi_bench/train/recipes/*.yaml) and accelerate configs
(recipes/accelerate/), loaded by name as `train --config NAME` does.

Every recipe loads through the same loader `imhi-bench train` uses; the paper's stated values
(MentaLLaMA, Yang et al., WWW 2024: effective batch 256 on 4 GPUs, lr 1e-5, 3% warm-up, max
length 2048) hold in each LLaMA recipe; each IMHI-general variant is its base recipe with
other `sets` and `output_dir`; each accelerate config parses as an accelerate config and
accelerate's launcher turns it into its FSDP / DeepSpeed plugin.  CPU only: nothing is launched.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from unittest import mock

import pytest
import yaml

from imhi_bench.train.recipe import FIELD_NAMES, Recipe, load_recipe

ROOT = Path(__file__).resolve().parents[1]
TRAINER = ROOT / "imhi_bench" / "train" / "recipes"
ACCELERATE = TRAINER / "accelerate"
GPUS = 4  # the paper's 4 x A100 80GB

# recipe -> (base model, finetuning, format, architecture)
EXPECTED = {
    "mentallama-7b": ("meta-llama/Llama-2-7b-hf", "full", "instruction", "causal"),
    "mentallama-chat-7b": ("meta-llama/Llama-2-7b-chat-hf", "full", "instruction", "causal"),
    "mentallama-chat-13b": ("meta-llama/Llama-2-13b-chat-hf", "full", "instruction", "causal"),
    "mentallama-33b-lora": ("lmsys/vicuna-33b-v1.3", "lora", "instruction", "causal"),
    "mentalbart": ("facebook/bart-large", "full", "completion", "seq2seq"),
    "mentalt5": ("google-t5/t5-large", "full", "completion", "seq2seq"),
}
GENERAL = {"mentallama-7b-general": "mentallama-7b",
           "mentallama-chat-7b-general": "mentallama-chat-7b",
           "mentallama-chat-13b-general": "mentallama-chat-13b"}
LLAMA = [n for n in [*EXPECTED, *GENERAL] if n.startswith("mentallama")]
SEQ2SEQ_MAX_LENGTH = {"mentalbart": 1024, "mentalt5": 512}  # BART's position table, T5's 512

RECIPE_FILES = sorted(TRAINER.glob("*.yaml"))
ACCELERATE_FILES = sorted(ACCELERATE.glob("*.yaml"))


def recipe(name: str) -> Recipe:
    return load_recipe(name)  # by name, as `train --config NAME`


def test_every_paper_model_has_a_recipe():
    assert {p.stem for p in RECIPE_FILES} == set(EXPECTED) | set(GENERAL)
    assert {p.stem for p in ACCELERATE_FILES} == {"ddp", "fsdp", "zero3"}


@pytest.mark.parametrize("path", RECIPE_FILES, ids=lambda p: p.stem)
def test_recipe_loads_with_known_keys_only(path):
    raw = yaml.safe_load(path.read_text("utf-8"))
    assert isinstance(raw, dict) and raw
    assert set(raw) <= set(FIELD_NAMES), set(raw) - set(FIELD_NAMES)
    r = load_recipe(path)  # types, choices and ranges checked by the loader
    assert r.output_dir == f"runs/train/{path.stem}"
    assert path.read_text("utf-8").startswith("# "), "a recipe opens with its header comment"
    # Every key the recipe sets arrives unchanged (no silent coercion of what a user wrote).
    for key, value in raw.items():
        got = getattr(r, key)
        assert (list(got) if isinstance(got, tuple) else got) == value, key


@pytest.mark.parametrize("name", list(EXPECTED))
def test_recipe_trains_the_paper_model(name):
    model, finetuning, fmt, arch = EXPECTED[name]
    r = recipe(name)
    assert (r.model, r.finetuning, r.format, r.architecture) == (model, finetuning, fmt, arch)
    assert r.sets == ("imhi",) and r.training_data == "IMHI"


@pytest.mark.parametrize("name", LLAMA)
def test_llama_recipes_keep_the_papers_values(name):
    r = recipe(name)
    assert r.learning_rate == 1e-5
    assert r.warmup_ratio == 0.03
    assert r.per_device_batch_size * GPUS * r.gradient_accumulation_steps == 256
    assert r.gradient_accumulation_steps == 8  # 32 x 8 in the paper: 8 accumulation steps
    assert r.max_length == 2048
    assert r.format == "instruction"


@pytest.mark.parametrize("name", list(SEQ2SEQ_MAX_LENGTH))
def test_seq2seq_recipes_keep_the_shared_values_and_cap_length(name):
    r = recipe(name)
    assert (r.learning_rate, r.warmup_ratio) == (1e-5, 0.03)
    assert r.per_device_batch_size * GPUS * r.gradient_accumulation_steps == 256
    assert r.max_length == SEQ2SEQ_MAX_LENGTH[name]


@pytest.mark.parametrize("general,base", list(GENERAL.items()))
def test_general_variant_is_its_base_on_imhi_general(general, base):
    g, b = recipe(general), recipe(base)
    assert g.sets == ("imhi_general",) and g.training_data == "IMHI-general"
    assert g.output_dir != b.output_dir
    assert g == dataclasses.replace(b, sets=g.sets, output_dir=g.output_dir)


def test_lora_recipe_says_its_lora_settings_are_ours():
    text = (TRAINER / "mentallama-33b-lora.yaml").read_text("utf-8")
    for key in ("lora_r", "lora_alpha", "lora_dropout", "lora_targets"):
        assert re.search(rf"^{key}:.*# ours", text, re.M), key


def test_recipe_overrides_apply():
    r = load_recipe(TRAINER / "mentallama-chat-7b.yaml",  # a path works too
                    ["max_steps=300", "sets=DR,SAD", "learning_rate=2e-3"])
    assert (r.max_steps, r.sets, r.learning_rate) == (300, ("DR", "SAD"), 2e-3)


def test_docs_name_only_files_that_exist():
    """Every recipe, accelerate config and spec the READMEs, the CLI's help and the file
    headers name is shipped (`--config NAME`, `accelerate/NAME.yaml`, `baseline run NAME`),
    and no doc names the old top-level folders' files."""
    from imhi_bench.cli.train import EPILOG

    specs = ROOT / "imhi_bench" / "baselines" / "specs"
    texts = {p.name: p.read_text("utf-8") for p in
             [ROOT / "README.md", TRAINER / "README.md", *RECIPE_FILES, *ACCELERATE_FILES,
              *specs.glob("*.yaml")]} | {"train --help": EPILOG}
    for name, text in texts.items():
        assert not re.findall(r"(?<![\w/])(?:trainer|baselines)/[\w./-]+\.yaml", text), name
        for ref in re.findall(r"--config[ =]([^\s\"'`)]+)", text):
            if ref not in ("RECIPE", "NAME") and "/" not in ref:  # a path: the user's own
                assert (TRAINER / f"{ref.removesuffix('.yaml')}.yaml").is_file(), (name, ref)
        for ref in re.findall(r"accelerate/([\w-]+)\.yaml", text):
            assert (ACCELERATE / f"{ref}.yaml").is_file(), (name, ref)
        for ref in re.findall(r"baseline run ([^\s\"'`)]+)", text):
            if ref not in ("SPEC", "NAME", "...") and "/" not in ref:
                assert (specs / f"{ref.removesuffix('.yaml')}.yaml").is_file(), (name, ref)


# --- accelerate configs ---------------------------------------------------------------------

def _load_accelerate(name: str):
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file

    config = load_config_from_file(str(ACCELERATE / f"{name}.yaml"))  # unknown keys raise
    assert isinstance(config, ClusterConfig)
    return config


@pytest.mark.parametrize("name,kind", [("ddp", "MULTI_GPU"), ("fsdp", "FSDP"),
                                       ("zero3", "DEEPSPEED")])
def test_accelerate_config_parses(name, kind):
    config = _load_accelerate(name)
    assert config.distributed_type.value == kind
    assert config.mixed_precision == "bf16"
    assert config.num_processes == GPUS and config.num_machines == 1
    assert not config.use_cpu


def test_recipes_precision_matches_the_accelerate_configs():
    assert {load_recipe(p).precision for p in RECIPE_FILES} == {"bf16"}


def test_fsdp_config_full_shard_transformer_wrap_sharded_state_dict():
    fsdp = _load_accelerate("fsdp").fsdp_config
    assert fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert fsdp["fsdp_state_dict_type"] == "SHARDED_STATE_DICT"
    assert fsdp["fsdp_activation_checkpointing"] is False  # the recipe's gradient_checkpointing
    assert fsdp["fsdp_offload_params"] is False
    # full shard: FSDP2 reshards after forward (FSDP1 would spell it FULL_SHARD)
    assert (fsdp["fsdp_version"], fsdp["fsdp_reshard_after_forward"]) in {(2, True),
                                                                        (1, "FULL_SHARD")}


def test_zero3_config_stage3_no_offload():
    ds = _load_accelerate("zero3").deepspeed_config
    assert ds["zero_stage"] == 3
    assert ds["offload_optimizer_device"] == ds["offload_param_device"] == "none"
    assert ds["zero3_save_16bit_model"] is True
    # Left to the recipe ("auto"), so the recipe's 8 accumulation steps hold under DeepSpeed.
    assert "gradient_accumulation_steps" not in ds and "gradient_clipping" not in ds


def _launch_env(name: str) -> tuple[object, dict[str, str]]:
    """What `accelerate launch --config_file <name> --num_processes 4 -m imhi_bench train`
    would hand each process (accelerate's own argument handling; nothing is started)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import launch as launch_utils

    args = launch_command_parser().parse_args(
        ["--config_file", str(ACCELERATE / f"{name}.yaml"), "--num_processes", str(GPUS),
         "-m", "imhi_bench", "train", "--config", "mentallama-chat-7b"])
    args, defaults, mp_from_config = _validate_launch_command(args)
    assert args.num_processes == GPUS and args.mixed_precision == "bf16"
    if args.use_deepspeed:
        fields = list(defaults.deepspeed_config) + (["mixed_precision"] if mp_from_config else [])
        args.deepspeed_fields_from_accelerate_config = ",".join(fields)  # as launch_command does
        _, env = launch_utils.prepare_deepspeed_cmd_env(args)
    else:
        env = launch_utils.prepare_multi_gpu_env(args)
    return args, env


def test_ddp_config_launches_as_multi_gpu():
    args, env = _launch_env("ddp")
    assert args.multi_gpu and not args.use_fsdp and not args.use_deepspeed
    assert env["ACCELERATE_MIXED_PRECISION"] == "bf16"


def test_fsdp_config_builds_accelerates_fsdp_plugin():
    from accelerate.utils import FullyShardedDataParallelPlugin

    args, env = _launch_env("fsdp")
    assert args.use_fsdp
    with mock.patch.dict(os.environ, env):
        plugin = FullyShardedDataParallelPlugin()
    assert plugin.state_dict_type.name == "SHARDED_STATE_DICT"
    assert plugin.auto_wrap_policy is not None and plugin.transformer_cls_names_to_wrap is None
    assert plugin.activation_checkpointing is False
    if plugin.fsdp_version == 2:
        assert plugin.reshard_after_forward is True
    else:
        assert plugin.reshard_after_forward.name == "FULL_SHARD"


def test_zero3_config_builds_accelerates_deepspeed_plugin():
    args, env = _launch_env("zero3")
    assert args.use_deepspeed
    assert env["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == "3"
    try:
        from accelerate.utils import DeepSpeedPlugin

        with mock.patch.dict(os.environ, env):
            plugin = DeepSpeedPlugin()
    except ImportError as e:  # DeepSpeed is a GPU-side extra
        pytest.skip(f"the DeepSpeed plugin needs deepspeed: {e}")
    zero = plugin.deepspeed_config["zero_optimization"]
    assert zero["stage"] == 3
    assert zero["offload_optimizer"]["device"] == zero["offload_param"]["device"] == "none"
    assert zero["stage3_gather_16bit_weights_on_model_save"] is True
    assert plugin.deepspeed_config["gradient_accumulation_steps"] == "auto"


def test_recipes_and_specs_load_by_name_or_path_and_a_wrong_name_is_one_line(tmp_path,
                                                                            monkeypatch):
    from imhi_bench.baselines.spec import load_spec
    from imhi_bench.core.errors import ImhiError

    assert load_recipe("mentalbart") == load_recipe("mentalbart.yaml") == \
        load_recipe(TRAINER / "mentalbart.yaml")
    own = tmp_path / "mentalbart"  # a file of the user's own wins over a shipped name
    own.write_text("model: m\noutput_dir: o\nmax_steps: 3\n", "utf-8")
    monkeypatch.chdir(tmp_path)
    assert load_recipe("mentalbart").max_steps == 3 and load_recipe(own).max_steps == 3
    assert load_spec("mentalroberta").name == "MentalRoBERTa"
    for load, bad, near in ((load_recipe, "mentallama-chat7b", "mentallama-chat-7b"),
                            (load_recipe, "trainer/mentalbart.yaml", "mentalbart"),
                            (load_spec, "mentalrobert", "mentalroberta")):
        with pytest.raises(ImhiError) as e:
            load(bad)
        text = str(e.value)
        assert f"{bad} does not exist (did you mean {near}?)" in text and "\n" not in text
        assert "mentalbart" in text or "chatgpt-fewshot" in text  # the shipped names, listed
