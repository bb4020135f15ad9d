"""BART-score: the paper's formula, batch/order independence, truncation, checkpoints."""

from __future__ import annotations

import random
import threading

import pytest
import torch
from tiny_models import build_tiny_bart, tiny_bart_dir, torch_threads

import imhi_bench.bart_score as bart_score
from imhi_bench.bart_score import MAX_LENGTH, bart_scores, load_bart, reference_scores
from imhi_bench.data import load_examples
from imhi_bench.errors import ImhiError


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models: one thread is faster and immune to CPU contention (tiny_models)."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def bart() -> str:
    return str(tiny_bart_dir())


@pytest.fixture(scope="module")
def pairs() -> tuple[list[str], list[str]]:
    """Generations (the next row's gold response) and golds from the released DR and SAD
    test files, plus edge cases: an empty generation and texts past 1024 tokens."""
    gens, golds = [], []
    for name in ("DR", "SAD"):
        rows = [e.gold for e in load_examples(name, "instruction")][:12]
        golds += rows
        gens += rows[1:] + rows[:1]
    long_text = " ".join(e.query for e in load_examples("DR", "instruction")[:40])[:5000]
    gens += ["", long_text, "Yes."]
    golds += ["No, the poster does not suffer from depression.", golds[0], long_text]
    return gens, golds


def test_long_texts_really_exceed_the_limit(bart, pairs):
    _, tok = load_bart(bart)
    assert len(tok(pairs[0][-2])["input_ids"]) > MAX_LENGTH


@pytest.fixture(scope="module")
def reference(bart, pairs) -> list[float]:
    net, tok = load_bart(bart)
    return reference_scores(net, tok, *pairs, batch_size=4)


@pytest.mark.parametrize("batch_size", [1, 3, 4, 16, 64])
def test_equals_reference_formula_at_batch_4_file_order(bart, pairs, reference, batch_size):
    gens, golds = pairs
    ref = reference
    ours = bart_scores(gens, golds, model=bart, batch_size=batch_size, progress=False)
    assert len(ours) == len(gens)
    # Per-set mean (what the paper reports) within 1e-4; per sample too, in fact ~1e-5.
    assert abs(sum(ref) / len(ref) - sum(ours) / len(ours)) <= 1e-4
    assert max(abs(a - b) for a, b in zip(ref, ours)) <= 1e-4
    # The scores are not all alike (a degenerate model would hide alignment bugs).
    assert max(ours) - min(ours) > 0.2


def test_independent_of_order_and_batch(bart, pairs):
    gens, golds = pairs
    base = bart_scores(gens, golds, model=bart, batch_size=8, progress=False)
    perm = list(range(len(gens)))
    random.Random(1).shuffle(perm)
    shuffled = bart_scores([gens[i] for i in perm], [golds[i] for i in perm], model=bart,
                           batch_size=5, progress=False)
    for j, i in enumerate(perm):
        assert shuffled[j] == pytest.approx(base[i], abs=1e-5)
    # One sample alone gives the same score as inside a batch.
    alone = bart_scores([gens[7]], [golds[7]], model=bart, progress=False)
    assert alone[0] == pytest.approx(base[7], abs=1e-5)


def _max_diff(a: list[float], b: list[float]) -> float:
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("batch_size", [1, 3])
def test_two_cpu_streams_give_the_reference_scores(bart, pairs, reference, batch_size,
                                                    monkeypatch):
    """With 2+ torch threads on CPU, chunks run in two worker threads with half the torch
    threads each; the scores stay the reference's and the thread count comes back."""
    calls: list[tuple[str, int]] = []
    real = bart_score._score_chunk

    def spy(*args, **kwargs):
        calls.append((threading.current_thread().name, torch.get_num_threads()))
        return real(*args, **kwargs)

    monkeypatch.setattr(bart_score, "_score_chunk", spy)
    with torch_threads(2):
        ours = bart_scores(*pairs, model=bart, batch_size=batch_size, progress=False)
        assert torch.get_num_threads() == 2
    assert len(calls) > 1  # several chunks, so the streams were used
    assert all(name.startswith("bart-score") and n == 1 for name, n in calls)
    assert _max_diff(ours, reference) <= 1e-4


def test_a_failing_stream_raises_and_restores_threads(bart, pairs, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(bart_score, "_score_chunk", boom)
    with torch_threads(2):
        with pytest.raises(RuntimeError, match="out of memory"):
            bart_scores(*pairs, model=bart, batch_size=1, progress=False)
        assert torch.get_num_threads() == 2


def test_a_stopped_chunk_scores_nothing_more(bart, pairs):
    """After one stream fails, the other stops at its next batch (not its chunk's end)."""
    net, tok = load_bart(bart)
    ids = tok([*pairs[0], *pairs[1]], max_length=MAX_LENGTH, truncation=True)["input_ids"]
    n = len(pairs[0])
    seen: list[int] = []
    stop = threading.Event()

    def record(idx, values):
        seen.extend(idx)
        stop.set()

    with torch.inference_mode():
        bart_score._score_chunk(net, list(range(n)), ids[:n], ids[n:], 2, record, stop)
    assert len(seen) == 2


def test_eager_attention_gets_a_mask_it_can_add(bart, pairs, reference):
    """The broadcast key mask is additive, so eager attention (which adds the mask to the
    scores) gives the same numbers as SDPA."""
    net, _ = load_bart(bart)
    net.set_attn_implementation("eager")
    try:
        ours = bart_scores(*pairs, model=bart, batch_size=3, progress=False)
    finally:
        net.set_attn_implementation("sdpa")
    assert _max_diff(ours, reference) <= 1e-4


def test_token_ids_are_the_tokenizers_and_leave_its_settings(bart, pairs):
    _, tok = load_bart(bart)
    texts = [*pairs[0], *pairs[1]]
    backend = tok.backend_tokenizer
    backend.enable_truncation(max_length=7)  # settings a caller may have made
    backend.enable_padding(length=9)
    try:
        before = (backend.truncation, backend.padding)
        got = bart_score._token_ids(tok, texts, 50)
        assert (backend.truncation, backend.padding) == before
    finally:
        backend.no_truncation()
        backend.no_padding()
    assert got == tok(texts, max_length=50, truncation=True)["input_ids"]
    assert max(map(len, got)) == 50 and min(map(len, got)) < 50


def test_token_ids_fall_back_to_the_tokenizers_own_call(bart, pairs):
    _, tok = load_bart(bart)
    texts = [*pairs[0], *pairs[1]]

    class Lowering:
        """A tokenizer that preprocesses in Python, which its backend alone would miss."""
        backend_tokenizer = tok.backend_tokenizer

        def __call__(self, batch, **kwargs):
            return tok([t.lower() for t in batch], **kwargs)

    class NoBackend:
        def __call__(self, batch, **kwargs):
            return tok(batch, **kwargs)

    lowered = tok([t.lower() for t in texts], max_length=MAX_LENGTH, truncation=True)
    assert lowered["input_ids"] != tok(texts, max_length=MAX_LENGTH, truncation=True)["input_ids"]
    assert bart_score._token_ids(Lowering(), texts, MAX_LENGTH) == lowered["input_ids"]
    assert bart_score._token_ids(NoBackend(), texts, MAX_LENGTH) == tok(
        texts, max_length=MAX_LENGTH, truncation=True)["input_ids"]


def test_formula_from_first_principles(bart):
    """-(sum of target NLL incl. <s> and </s>) / target length, source = generation."""
    net, tok = load_bart(bart)
    gen, gold = "The poster feels hopeless.", "Yes, the poster suffers from depression."
    src = tok(gen, return_tensors="pt")
    tgt = tok(gold, return_tensors="pt")["input_ids"]
    assert tgt[0, 0].item() == tok.bos_token_id and tgt[0, -1].item() == tok.eos_token_id
    with torch.no_grad():
        logits = net(**src, labels=tgt).logits[0]
    logp = torch.log_softmax(logits, dim=-1)
    expected = logp[torch.arange(tgt.shape[1]), tgt[0]].sum().item() / tgt.shape[1]
    assert bart_scores([gen], [gold], model=bart, progress=False)[0] == pytest.approx(
        expected, abs=1e-5)
    # Direction: swapping source and target changes the score.
    assert bart_scores([gold], [gen], model=bart, progress=False)[0] != pytest.approx(
        expected, abs=1e-3)


def test_empty_input_and_mismatch(bart):
    assert bart_scores([], [], model=bart) == []
    with pytest.raises(ImhiError, match="as many sources as targets"):
        bart_scores(["a"], [], model=bart)
    with pytest.raises(ImhiError, match="batch size"):
        bart_scores(["a"], ["b"], model=bart, batch_size=0)


def test_missing_model_is_one_line_error(tmp_path):
    with pytest.raises(ImhiError, match="cannot load BART model") as e:
        bart_scores(["a"], ["b"], model=str(tmp_path / "nope"))
    assert "\n" not in str(e.value)


def test_checkpoint_state_dict_is_loaded(bart, tmp_path):
    other = build_tiny_bart(tmp_path / "other", seed=1)
    net_other, _ = load_bart(str(other))
    ckpt = tmp_path / "bart_score.pth"
    torch.save(net_other.state_dict(), ckpt)
    gens, golds = ["The post is calm."], ["No, the poster does not suffer from stress."]
    want = bart_scores(gens, golds, model=str(other), progress=False)
    got = bart_scores(gens, golds, model=bart, checkpoint=str(ckpt), progress=False)
    plain = bart_scores(gens, golds, model=bart, progress=False)
    assert got[0] == pytest.approx(want[0], abs=1e-6)
    assert plain[0] != pytest.approx(want[0], abs=1e-3)
    # Older checkpoints omit the weights tied to the shared embedding: still fine.
    state = {k: v for k, v in net_other.state_dict().items() if k != "lm_head.weight"}
    torch.save(state, tmp_path / "untied.pth")
    again = bart_scores(gens, golds, model=bart, checkpoint=str(tmp_path / "untied.pth"),
                        progress=False)
    assert again[0] == pytest.approx(want[0], abs=1e-6)


def test_bad_checkpoints(bart, tmp_path):
    with pytest.raises(ImhiError, match="does not exist"):
        bart_scores(["a"], ["b"], model=bart, checkpoint=str(tmp_path / "none.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ImhiError, match="not a loadable state dict"):
        bart_scores(["a"], ["b"], model=bart, checkpoint=str(junk))
    wrong = tmp_path / "wrong.pth"
    torch.save({"bert.weight": torch.zeros(2)}, wrong)
    with pytest.raises(ImhiError, match="does not match the BART model"):
        bart_scores(["a"], ["b"], model=bart, checkpoint=str(wrong))
