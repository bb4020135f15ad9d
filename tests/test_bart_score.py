"""BART-score: the paper's formula, batch/order independence, truncation, checkpoints."""

from __future__ import annotations

import random
import threading
import time

import pytest
import torch
from tiny_models import build_tiny_bart, tiny_bart_dir, torch_threads

import imhi_bench.scoring.quality.bart_score as bart_score
from imhi_bench.benchmark.data import load_examples
from imhi_bench.core.errors import ImhiError
from imhi_bench.scoring.quality.bart_model import load_bart
from imhi_bench.scoring.quality.bart_score import MAX_LENGTH, bart_scores, reference_scores


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
    """With 2+ torch threads on CPU, batches run in two worker threads with half the torch
    threads each; the scores stay the reference's and the thread count comes back."""
    calls: list[tuple[str, str, int]] = []

    def spy(name, real):
        def run(*args, **kwargs):
            calls.append((name, threading.current_thread().name, torch.get_num_threads()))
            return real(*args, **kwargs)
        return run

    monkeypatch.setattr(bart_score, "_encode", spy("encode", bart_score._encode))
    monkeypatch.setattr(bart_score, "_decode", spy("decode", bart_score._decode))
    with torch_threads(2):
        ours = bart_scores(*pairs, model=bart, batch_size=batch_size, progress=False)
        assert torch.get_num_threads() == 2
    assert {name for name, _, _ in calls} == {"encode", "decode"}
    assert all(thread.startswith("bart-score") and n == 1 for _, thread, n in calls)
    assert _max_diff(ours, reference) <= 1e-4


def test_a_failing_stream_raises_and_restores_threads(bart, pairs, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(bart_score, "_encode", boom)
    with torch_threads(2):
        with pytest.raises(RuntimeError, match="out of memory"):
            bart_scores(*pairs, model=bart, batch_size=1, progress=False)
        assert torch.get_num_threads() == 2


def test_after_a_failed_batch_no_new_batch_starts(bart, pairs, monkeypatch):
    """Once one stream fails, the batches still queued are skipped, not computed."""
    real, lock, started = bart_score._decode, threading.Lock(), []

    def first_fails(*args, **kwargs):
        with lock:
            started.append(1)
            first = len(started) == 1
        if first:
            raise RuntimeError("out of memory")
        time.sleep(0.05)  # the other stream is busy while the first one fails
        return real(*args, **kwargs)

    monkeypatch.setattr(bart_score, "_decode", first_fails)
    batches = sum(len(decode) for _, decode in bart_score._plan(
        *_lengths(bart, pairs), batch_size=1, width=1))
    assert batches >= 8
    with torch_threads(2), pytest.raises(RuntimeError, match="out of memory"):
        bart_scores(*pairs, model=bart, batch_size=1, progress=False)
    assert len(started) <= 2  # the failing batch and the one running beside it


def _lengths(bart, pairs) -> tuple[list[int], list[int]]:
    net, tok = load_bart(bart)
    n = len(pairs[0])
    ids = bart_score._token_ids(tok, [*pairs[0], *pairs[1]], bart_score._max_length(net))
    return [len(x) for x in ids[:n]], [len(x) for x in ids[n:]]


def _plan_cost(plan, src, tgt) -> int:
    """Padded attention area: encoder self, decoder self and cross-attention."""
    cost = 0
    for encode, decode in plan:
        cost += sum(len(b) * max(src[i] for i in b) ** 2 for b in encode)
        for b in decode:
            t, s = max(tgt[i] for i in b), max(src[i] for i in b)
            cost += len(b) * (t * t + t * s)
    return cost


def test_plan_covers_every_sample_once_within_budgets(monkeypatch):
    rng = random.Random(0)
    src = [rng.randint(5, 700) for _ in range(300)]
    tgt = [rng.randint(5, 700) for _ in range(300)]
    monkeypatch.setattr(bart_score, "_STATE_FLOATS", 40 * sum(src) // 3)  # ~3 chunks, width 40
    plan = bart_score._plan(src, tgt, batch_size=8, width=40)
    assert len(plan) in (3, 4)  # greedy packing may leave a small last chunk
    seen_enc, seen_dec = [], []
    for encode, decode in plan:
        members = sorted(i for b in encode for i in b)
        assert members == sorted(i for b in decode for i in b)  # decoded where encoded
        assert sum(src[i] for i in members) * 40 <= bart_score._STATE_FLOATS
        seen_enc += members
        seen_dec += [i for b in decode for i in b]
        budget = 8 * sum(src) / len(src)
        for b in encode:  # longest first; one long sample alone is allowed
            assert len(b) == 1 or len(b) * max(src[i] for i in b) <= budget
    assert sorted(seen_enc) == sorted(seen_dec) == list(range(300))


def test_plan_pads_less_than_plain_length_sorted_batches():
    """Unrelated source and target lengths: the 2-D decoder strips and length budgets must
    beat batches of 8 sorted by source then target length (the simple scheme)."""
    rng = random.Random(1)
    src = [int(rng.lognormvariate(5.2, 0.5)) + 2 for _ in range(500)]
    tgt = [int(rng.lognormvariate(5.2, 0.5)) + 2 for _ in range(500)]
    ours = _plan_cost(bart_score._plan(src, tgt, batch_size=8, width=1), src, tgt)
    by_src = sorted(range(500), key=lambda i: src[i])
    simple = [(bart_score._split(by_src, 500 // 8),
               bart_score._split(sorted(by_src, key=lambda i: tgt[i]), 500 // 8))]
    ideal = sum(s * s + t * t + s * t for s, t in zip(src, tgt, strict=True))
    assert ours < 0.9 * _plan_cost(simple, src, tgt)
    assert ours < 1.25 * ideal


def test_several_chunks_give_the_reference_scores(bart, pairs, reference, monkeypatch):
    monkeypatch.setattr(bart_score, "_STATE_FLOATS", 32 * 1500)  # a few samples per chunk
    calls = []
    real = bart_score._plan

    def spy(*args, **kwargs):
        calls.append(real(*args, **kwargs))
        return calls[-1]

    monkeypatch.setattr(bart_score, "_plan", spy)
    ours = bart_scores(*pairs, model=bart, batch_size=2, progress=False)
    assert len(calls[0]) > 3
    assert _max_diff(ours, reference) <= 1e-4


def test_logits_add_the_final_bias(bart):
    net, _ = load_bart(bart)
    hidden = torch.randn(5, net.config.d_model)
    with torch.inference_mode():
        want = net.lm_head(hidden) + net.final_logits_bias
        assert torch.allclose(bart_score._logits(net, hidden), want, atol=1e-5)
        original = net.lm_head
        try:  # a head that is not a plain linear layer is called as is
            net.lm_head = torch.nn.Sequential(original)
            assert torch.allclose(bart_score._logits(net, hidden), want, atol=1e-5)
        finally:
            net.lm_head = original


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
