"""The trainer's parts: recipes, training rows, the encoding of a sample (prompt parity
with eval, loss mask, EOS, cutting the post), and the training card reaching the store."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from tiny_models import build_tiny_llama

from imhi_bench.benchmark.data import split_post
from imhi_bench.cli.main import main
from imhi_bench.core.errors import ImhiError
from imhi_bench.models.prompts import encode_prompts, render_prompt
from imhi_bench.train.data import Example, load_train_data
from imhi_bench.train.encode import IGNORE, PromptStyle, encode_examples
from imhi_bench.train.recipe import FIELD_NAMES, field_docs, load_recipe

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
REQUIRED = ["model=m", "output_dir=o"]


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return build_tiny_llama(tmp_path_factory.mktemp("llama"))


@pytest.fixture(scope="module")
def chat_llama(tmp_path_factory):
    return build_tiny_llama(tmp_path_factory.mktemp("chat-llama"), chat_template=CHAT_TEMPLATE)


def _tokenizer(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


# --------------------------------------------------------------------------- recipes


def test_overrides_parse_as_yaml_and_take_each_field_s_type(tmp_path):
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text("model: base\noutput_dir: out\nsets: [DR]\nmax_steps: 10\n")
    r = load_recipe(recipe_file, ["max_steps=300", "learning_rate=2e-3", "sets=DR,SAD",
                                  "gradient_checkpointing=false", "max_val=null",
                                  "lora_targets=[q_proj, v_proj]"])
    assert (r.max_steps, r.learning_rate, r.sets) == (300, 2e-3, ("DR", "SAD"))
    assert r.gradient_checkpointing is False and r.max_val is None
    assert r.lora_targets == ("q_proj", "v_proj") and r.model == "base"
    assert r.training_data == "other"
    assert load_recipe(None, [*REQUIRED, "sets=imhi_general"]).training_data == "IMHI-general"
    assert load_recipe(None, REQUIRED).training_data == "IMHI"  # the default: all of IMHI


@pytest.mark.parametrize("overrides, message", [
    (["learnig_rate=1e-4"], "unknown override key 'learnig_rate' (did you mean learning_rate?)"),
    (["max_steps=3.5"], "max_steps must be an integer"),
    (["finetuning=adapter"], "finetuning is 'adapter': use one of full, lora, qlora"),
    (["warmup_ratio=1.5"], "warmup_ratio must be in [0, 1)"),
    (["gradient_checkpointing=maybe"], "must be true or false"),
    (["max_length=0"], "max_length must be at least 1"),
    (["max_steps"], "is not key=value"),
])
def test_bad_overrides_are_one_line_naming_the_key(overrides, message):
    with pytest.raises(ImhiError) as e:
        load_recipe(None, [*REQUIRED, *overrides])
    assert message in str(e.value) and "\n" not in str(e.value)


def test_unknown_recipe_file_key_names_the_nearest(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text("model: m\noutput_dir: o\nper_device_batchsize: 4\n")
    with pytest.raises(ImhiError, match=r"per_device_batchsize.*did you mean "
                                         r"per_device_batch_size"):
        load_recipe(f)


def test_every_recipe_field_is_documented_and_listed_by_help_recipe(capsys):
    docs = field_docs()
    assert set(docs) == set(FIELD_NAMES) and all(len(d) > 10 for d in docs.values())
    assert main(["train", "--help-recipe"]) == 0
    out = capsys.readouterr().out
    assert all(f"{name} (default" in out for name in FIELD_NAMES)


# --------------------------------------------------------------------------- data


def test_every_released_query_splits_around_its_post(imhi_dir):
    n = 0
    for path in Path(imhi_dir).rglob("*.csv"):
        if "DR_annotation" in path.parts:
            continue
        with open(path, encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                query = row["query"] if "query" in row else row["post"] + row["question"]
                before, post, after = split_post(query)
                assert before + post + after == query and post.strip()
                assert after.lstrip('"').startswith(" Question:")
                n += 1
    assert n > 40_000


def test_train_rows_drop_those_in_a_test_set_and_say_how_many(imhi_dir):
    data = load_train_data(("dreaddit",), "instruction", data_dir=imhi_dir)
    counts = data.counts["dreaddit"]
    assert counts["train_dropped_in_test"] == 2 and counts["train"] == 2837 - 2
    assert len(data.train) == counts["train"]
    assert set(data.files) == {"train_data/instruction_data/dreaddit/train.csv",
                               "train_data/instruction_data/dreaddit/val.csv"}
    completion = load_train_data(("dreaddit",), "completion", data_dir=imhi_dir)
    assert completion.counts["dreaddit"]["train_dropped_in_test"] == 2
    # completion prompts are the released post + question, the shape of test_complete
    assert completion.train[0].query.startswith("Post: ")


def test_imhi_general_leaves_out_the_unseen_sets(imhi_dir):
    data = load_train_data(("imhi_general",), "instruction", data_dir=imhi_dir)
    assert set(data.counts) == {"DR", "SAD"}  # dreaddit is unseen; Irf has no train file
    assert any(n.startswith("skipping loneliness") for n in data.notes)
    assert not any("CAMS" in n or "dreaddit" in n for n in data.notes)
    with pytest.raises(ImhiError, match=r"CAMS has no instruction train data .*put its train "
                                        r"file at .*train_data/instruction_data/CAMS/train.csv"):
        load_train_data(("CAMS",), "instruction", data_dir=imhi_dir)


# --------------------------------------------------------------------------- encoding


def test_the_loss_covers_the_response_and_its_eos_even_when_pad_is_eos(llama):
    tok = _tokenizer(llama)
    tok.pad_token = tok.eos_token
    ex = Example("DR", 'Consider this post: "I feel fine." Question: Does the poster suffer '
                 "from depression?", "No, the poster does not suffer from depression.")
    [row] = encode_examples(tok, [ex], PromptStyle(chat=False), 512).rows
    prompt = encode_prompts(tok, [ex.query])[0]
    assert row["input_ids"][:len(prompt)] == prompt
    assert row["labels"][:len(prompt)] == [IGNORE] * len(prompt)
    response = row["labels"][len(prompt):]
    assert response[-1] == tok.eos_token_id == tok.pad_token_id  # kept in the loss
    assert tok.decode(response, skip_special_tokens=True).strip() == ex.response


def test_a_long_sample_loses_post_never_response(llama):
    tok = _tokenizer(llama)
    post = " ".join(f"word{i}" for i in range(400))
    ex = Example("DR", f'Consider this post: "{post}" Question: Does the poster suffer from '
                 "depression?", "Yes, the poster suffers from depression. Reasoning: " + "x " * 20)
    enc = encode_examples(tok, [ex], PromptStyle(chat=False), 200)
    [row] = enc.rows
    assert enc.truncated == 1 and len(row["input_ids"]) <= 200
    n_prompt = row["labels"].count(IGNORE)
    prompt_text = tok.decode(row["input_ids"][:n_prompt], skip_special_tokens=True)
    assert prompt_text.startswith('Consider this post: "word0 word1')
    assert prompt_text.endswith('" Question: Does the poster suffer from depression?')
    full = tok(ex.response, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert row["labels"][n_prompt:] == full  # the whole response
    # a response that cannot fit at all drops its sample, and is counted
    assert encode_examples(tok, [ex], PromptStyle(chat=False), 20).dropped == 1


def _eval_prompts(model, out, capsys, *extra) -> list[dict]:
    rc = main(["eval", "--model", str(model), "--tasks", "imhi_dr,imhi_sad", "--limit", "3",
               "--max-new-tokens", "4", "--no-db", "--no-cache", "--output", str(out), *extra])
    assert rc == 0, capsys.readouterr().err
    recs = []
    for task in ("imhi_dr", "imhi_sad"):
        recs += [json.loads(line) for line in open(out / f"samples_{task}.jsonl")]
    return recs


@pytest.mark.parametrize("chat", [False, True])
def test_training_prompts_are_byte_for_byte_what_eval_sends(chat, llama, chat_llama,
                                                            tmp_path, capsys):
    """The prompt eval recorded for each sample (after lm-eval built it, chat template and
    system prompt included) is the one the trainer renders, and encodes alike."""
    model = chat_llama if chat else llama
    system = "You are a careful annotator."
    # eval sends the raw query unless asked for the template (the default protocol)
    recs = _eval_prompts(model, tmp_path / "run", capsys, "--system-prompt", system,
                         *(["--chat-template"] if chat else []))
    tok = _tokenizer(model)
    assert bool(tok.chat_template) is chat
    for rec in recs:
        query = rec["doc"]["query"]
        ours = render_prompt(tok, query, chat=chat, system_prompt=system)
        assert ours == rec["prompt"]
        assert ours == rec["arguments"]["gen_args_0"]["arg_0"]
        ex = Example(rec["set"], query, rec["gold"])
        [row] = encode_examples(tok, [ex], PromptStyle(chat=chat, system_prompt=system),
                                4096).rows
        n_prompt = row["labels"].count(IGNORE)
        assert row["input_ids"][:n_prompt] == encode_prompts(tok, [rec["prompt"]])[0]
    if chat:  # the template's BOS is not doubled
        assert recs[0]["prompt"].startswith("<|system|>")


# --------------------------------------------------------------------------- card -> store


def test_eval_and_submit_record_the_training_data_of_a_trained_folder(llama, tmp_path, capsys):
    import shutil

    from imhi_bench.models.card import CARD_FILE
    from imhi_bench.queue.submission import SubmitOptions, prepare

    trained = tmp_path / "trained"
    shutil.copytree(llama, trained)
    (trained / CARD_FILE).write_text(json.dumps({
        "training_data": "IMHI-general",
        "recipe": {"sets": ["imhi_general"], "format": "instruction", "finetuning": "full",
                   "model": str(llama)}}))
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    rc = main(["eval", "--model", str(trained), "--tasks", "imhi_dr", "--limit", "2",
               "--max-new-tokens", "4", "--no-cache", "--db", url, "--output",
               str(tmp_path / "run")])
    assert rc == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "run" / "imhi_results.json").read_text())
    assert report["provenance"]["training"]["training_data"] == "IMHI-general"
    from imhi_bench.store.engine import open_store
    from imhi_bench.store.tables import Model

    with open_store(url)() as s:
        assert s.query(Model.training_data).filter(Model.name == "trained").scalar() \
            == "IMHI-general"
    record = prepare(SubmitOptions(model=str(trained), name="trained-one"))
    assert record["training_data"] == "IMHI-general"
    # what the submitter says wins over the card
    record = prepare(SubmitOptions(model=str(trained), name="trained-two",
                                   training_data="other"))
    assert record["training_data"] == "other"


@pytest.mark.parametrize("seq2seq", [False, True])
@pytest.mark.parametrize("on", [True, False])
def test_gradient_checkpointing_reaches_the_trainer_in_its_words(on, seq2seq, tmp_path):
    """The recipe's switch, in the installed transformers' words (5.19, the GPU set's, knows
    only gradient_checkpointing; newer ones warn on it), also over SFTConfig's default (on)."""
    import warnings

    from imhi_bench.train.trainer import training_args

    recipe = load_recipe(None, [*REQUIRED, f"gradient_checkpointing={str(on).lower()}"])
    with warnings.catch_warnings():
        warnings.filterwarnings("error", ".*checkpointing", FutureWarning)
        args = training_args(recipe, precision="fp32", batching="group_by_length",
                             has_val=False, seq2seq=seq2seq, out=tmp_path)
    assert type(args).__name__ == ("Seq2SeqTrainingArguments" if seq2seq else "SFTConfig")
    assert args.gradient_checkpointing is on
    assert args.gradient_checkpointing_kwargs == {"use_reentrant": False}
    assert getattr(args, "activation_checkpointing", on) is on
