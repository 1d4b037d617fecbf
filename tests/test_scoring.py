"""Salient scoring (npc_rt.scoring over the Rust core): parity with a plain numpy implementation of
docs/npc-method.md, the zero-vector rule, errors, and rank_candidates' single encoder call.

Tolerance: the core computes dot products from float32 products (summed in float32 within
256-element blocks, then in float64) while the reference below is float64 throughout, so each cosine
differs by a few 1e-7 at most; rtol 1e-5 (the issue's bound) plus atol 1e-7 for components near 0,
where a relative bound means nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
from npc_rt import _npc_rt
from npc_rt.errors import InvalidInputError, NonFiniteError, ShapeError
from npc_rt.prompt import analyze_prompt
from npc_rt.scoring import (
    RankedCandidate,
    mean_pool,
    rank_candidates,
    salient_scores,
    salient_scores_batch,
)

RTOL, ATOL = 1e-5, 1e-7


# -- plain numpy reference ----------------------------------------------------------------------


def ref_mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    h = hidden.astype(np.float64)
    m = mask.astype(np.float64)
    return (h * m[:, :, None]).sum(axis=1) / m.sum(axis=1, keepdims=True)


def ref_cos(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return 0.0 if na == 0 or nb == 0 else float(a @ b / (na * nb))


def ref_scores(p, cands, phrases, qtys, objs):
    rows = []
    for c, f in zip(cands, phrases, strict=True):
        delta = p.astype(np.float64) - c.astype(np.float64)
        s_cand = ref_cos(delta, f)
        s_qty = np.mean([ref_cos(delta, q) for q in qtys])
        s_obj = np.mean([ref_cos(delta, o) for o in objs])
        rows.append((s_qty, s_obj, s_cand, s_qty + s_obj - s_cand))
    s_qty, s_obj, s_cand, score = (np.array(col) for col in zip(*rows, strict=True))
    order = np.argsort(-score, kind="stable")
    return s_qty, s_obj, s_cand, score, order


def assert_matches_reference(result, expected):
    for name, got, want in zip(
        ("s_qty", "s_obj", "s_cand", "score"), result[:4], expected[:4], strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=name)
    np.testing.assert_array_equal(result[4], expected[4])


def as_tuple(r):
    return (r.s_qty, r.s_obj, r.s_cand, r.score, r.order)


# -- pooling -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_mean_pool_matches_numpy(dtype):
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((7, 13, 96)).astype(dtype) * 3
    lengths = rng.integers(1, 14, size=7)
    mask = (np.arange(13)[None, :] < lengths[:, None]).astype(np.int64)
    mask[2] = rng.integers(0, 2, size=13)
    mask[2, 5] = 1  # a non-prefix mask with at least one token
    pooled = mean_pool(hidden, mask)
    assert pooled.dtype == np.float32 and pooled.shape == (7, 96)
    np.testing.assert_allclose(pooled, ref_mean_pool(hidden, mask), rtol=RTOL, atol=ATOL)


def test_mean_pool_ignores_padding_and_accepts_other_layouts():
    rng = np.random.default_rng(1)
    hidden = rng.standard_normal((3, 6, 40)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0], [1] * 6])
    poisoned = hidden.copy()
    poisoned[mask == 0] = np.nan  # padding is never read
    expected = ref_mean_pool(hidden, mask)
    np.testing.assert_allclose(mean_pool(poisoned, mask), expected, rtol=RTOL, atol=ATOL)
    # Right-padding further changes nothing, bitwise.
    wider = np.concatenate([hidden, rng.standard_normal((3, 5, 40)).astype(np.float32)], axis=1)
    wider_mask = np.concatenate([mask, np.zeros((3, 5), dtype=np.int64)], axis=1)
    np.testing.assert_array_equal(mean_pool(wider, wider_mask), mean_pool(hidden, mask))
    # Non-contiguous, float64 and bool inputs: converted once, same numbers.
    fortran = np.asfortranarray(hidden)
    np.testing.assert_array_equal(mean_pool(fortran, mask.astype(bool)), mean_pool(hidden, mask))
    np.testing.assert_array_equal(
        mean_pool(hidden.astype(np.float64), mask), mean_pool(hidden, mask)
    )
    # The binding itself copies non-contiguous arrays it is handed directly.
    strided = wider[:, ::2, :]
    strided_mask = np.ascontiguousarray(wider_mask[:, ::2])
    np.testing.assert_array_equal(
        _npc_rt.mean_pool_f32(strided, strided_mask),
        mean_pool(np.ascontiguousarray(strided), strided_mask),
    )


def test_mean_pool_errors():
    h = np.zeros((2, 3, 4), dtype=np.float32)
    ok = np.ones((2, 3), dtype=np.int64)
    with pytest.raises(ShapeError, match="hidden"):
        mean_pool(h[0], ok)
    with pytest.raises(ShapeError, match="mask"):
        mean_pool(h, ok[:, :2])
    with pytest.raises(InvalidInputError, match=r"mask\[1, 2\] = 2"):
        mean_pool(h, np.array([[1, 1, 1], [1, 1, 2]]))
    with pytest.raises(InvalidInputError, match="mask row 0 selects no token"):
        mean_pool(h, np.array([[0, 0, 0], [1, 1, 1]]))
    with pytest.raises(InvalidInputError, match="mask must be integer"):
        mean_pool(h, ok.astype(np.float32))
    with pytest.raises(InvalidInputError, match="hidden must be float"):
        mean_pool(h.astype(np.int32), ok)
    bad = h.copy()
    bad[1, 1, 3] = np.inf
    with pytest.raises(NonFiniteError, match="hidden row 1"):
        mean_pool(bad, ok)
    with pytest.raises(NonFiniteError, match="hidden row 0"):
        mean_pool(bad.astype(np.float16)[::-1], ok)


# -- scores --------------------------------------------------------------------------------------


def _random_prompt(rng, d, k, q, o, dtype=np.float32):
    return (
        rng.standard_normal(d).astype(dtype),
        rng.standard_normal((k, d)).astype(dtype),
        rng.standard_normal((k, d)).astype(dtype),
        rng.standard_normal((q, d)).astype(dtype),
        rng.standard_normal((o, d)).astype(dtype),
    )


@pytest.mark.parametrize(("d", "k", "q", "o"), [(4096, 8, 4, 2), (97, 1, 1, 1), (300, 5, 6, 9)])
def test_single_prompt_matches_numpy(d, k, q, o):
    rng = np.random.default_rng(d + k)
    args = _random_prompt(rng, d, k, q, o)
    # Candidates close to the prompt make delta small, the case cancellation would hurt.
    args[1][0] = args[0] + 1e-3 * rng.standard_normal(d).astype(np.float32)
    assert_matches_reference(as_tuple(salient_scores(*args)), ref_scores(*args))


@pytest.mark.parametrize("hidden_dtype", [np.float32, np.float16])
def test_ragged_batch_from_pooled_hidden_states_matches_numpy(hidden_dtype):
    """The whole path: hidden states (f32 or f16) -> pooling -> ragged scores, vs numpy."""
    rng = np.random.default_rng(2)
    d, length = 256, 9
    counts = [(3, 2, 2), (1, 6, 1), (8, 4, 2), (5, 1, 3)]  # (K, Q, O) per prompt
    n_rows = sum(1 + 2 * k + q + o for k, q, o in counts)
    hidden = rng.standard_normal((n_rows, length, d)).astype(hidden_dtype)
    lengths = rng.integers(1, length + 1, size=n_rows)
    mask = (np.arange(length)[None, :] < lengths[:, None]).astype(np.int64)
    pooled = mean_pool(hidden, mask)
    ref_pooled = ref_mean_pool(hidden, mask).astype(np.float32)
    np.testing.assert_allclose(pooled, ref_pooled, rtol=RTOL, atol=ATOL)

    groups: dict[str, list[np.ndarray]] = {n: [] for n in ("p", "c", "f", "q", "o")}
    row = 0
    for k, q, o in counts:
        for name, n in (("p", 1), ("c", k), ("f", k), ("q", q), ("o", o)):
            groups[name].append(pooled[row : row + n])
            row += n

    def offsets(name):
        return np.concatenate([[0], np.cumsum([len(x) for x in groups[name]])])

    batch = salient_scores_batch(
        np.concatenate(groups["p"]),
        np.concatenate(groups["c"]),
        np.concatenate(groups["f"]),
        np.concatenate(groups["q"]),
        np.concatenate(groups["o"]),
        cand_offsets=offsets("c"),
        qty_offsets=offsets("q"),
        obj_offsets=offsets("o"),
    )
    assert len(batch) == len(counts)
    for i in range(len(counts)):
        args = (groups["p"][i][0], groups["c"][i], groups["f"][i], groups["q"][i], groups["o"][i])
        expected = ref_scores(*args)
        assert_matches_reference(as_tuple(batch.prompt(i)), expected)
        # The single-prompt entry point agrees exactly with its slice of the batch.
        single = salient_scores(*args)
        for got, want in zip(as_tuple(single), as_tuple(batch.prompt(i)), strict=True):
            np.testing.assert_array_equal(got, want)


def test_zero_vectors_are_neutral_and_ties_keep_input_order():
    p = np.array([1.0, 2.0, 0.0], dtype=np.float32)
    cands = np.array([[1, 2, 0], [0, 1, 0], [1, 2, 0]], dtype=np.float32)
    phrases = np.array([[1, 0, 0], [0, 0, 0], [0, 1, 0]], dtype=np.float32)
    qtys = np.array([[0, 0, 1]], dtype=np.float32)
    objs = np.array([[1, 1, 0], [0, 0, 0]], dtype=np.float32)
    r = salient_scores(p, cands, phrases, qtys, objs)
    # Candidates 0 and 2 equal the prompt: delta = 0, every component 0, tied, input order kept.
    np.testing.assert_array_equal(r.score[[0, 2]], [0.0, 0.0])
    # Candidate 1: delta = (1, 1, 0); zero phrase -> s_cand 0; s_obj = (1 + 0) / 2; s_qty = 0.
    assert r.s_cand[1] == 0.0 and r.s_qty[1] == 0.0
    assert r.s_obj[1] == pytest.approx(0.5)
    assert r.order.tolist() == [1, 0, 2]
    assert_matches_reference(as_tuple(r), ref_scores(p, cands, phrases, qtys, objs))


def test_score_errors_name_the_argument():
    rng = np.random.default_rng(3)
    p, c, f, q, o = _random_prompt(rng, 16, 3, 2, 2)
    with pytest.raises(ShapeError, match="obj_phrases has embedding size 15"):
        salient_scores(p, c, f, q, o[:, :15])
    with pytest.raises(ShapeError, match="cand_phrases has 2 rows"):
        salient_scores(p, c, f[:2], q, o)
    with pytest.raises(ShapeError, match="cand_embs must have 2 dimensions"):
        salient_scores(p, c[0], f, q, o)
    with pytest.raises(InvalidInputError, match="at least one candidate"):
        salient_scores(p, c[:0], f[:0], q, o)
    with pytest.raises(InvalidInputError, match="quantity list of prompt 0 is empty"):
        salient_scores(p, c, f, q[:0], o)
    with pytest.raises(InvalidInputError, match="object list of prompt 0 is empty"):
        salient_scores(p, c, f, q, o[:0])
    for name, i in (
        ("prompt_emb", 0),
        ("cand_embs", 1),
        ("cand_phrases", 2),
        ("qty_phrases", 3),
        ("obj_phrases", 4),
    ):
        args = [a.copy() for a in (p, c, f, q, o)]
        args[i].reshape(-1)[-1] = np.nan if i % 2 else -np.inf
        with pytest.raises(NonFiniteError, match=name):
            salient_scores(*args)
    stacked = dict(cand_offsets=[0, 3], qty_offsets=[0, 2], obj_offsets=[0, 2])
    good = (p[None], c, f, q, o)
    assert len(salient_scores_batch(*good, **stacked)) == 1
    with pytest.raises(ShapeError, match="cand_offsets has 3 entries"):
        salient_scores_batch(*good, **{**stacked, "cand_offsets": [0, 1, 3]})
    with pytest.raises(ShapeError, match="qty_offsets must start at 0 and end at the number"):
        salient_scores_batch(*good, **{**stacked, "qty_offsets": [0, 1]})
    with pytest.raises(InvalidInputError, match="obj_offsets holds a negative value"):
        salient_scores_batch(*good, **{**stacked, "obj_offsets": [-1, 2]})
    with pytest.raises(InvalidInputError, match="cand_offsets must be a 1-D integer"):
        salient_scores_batch(*good, **{**stacked, "cand_offsets": [0.0, 3.0]})
    two = (np.stack([p, p]), c, f, q, o)
    offsets_12 = dict(qty_offsets=[0, 1, 2], obj_offsets=[0, 1, 2])
    with pytest.raises(InvalidInputError, match="candidate list of prompt 1 is empty"):
        salient_scores_batch(*two, cand_offsets=[0, 3, 3], **offsets_12)
    with pytest.raises(InvalidInputError, match="candidate list of prompt 1 decreases"):
        salient_scores_batch(*two, cand_offsets=[0, 4, 3], **offsets_12)


# -- rank_candidates with a fake tokenizer and encoder -------------------------------------------


class FakeBatch:
    def __init__(self, input_ids, attention_mask):
        self.input_ids, self.attention_mask = input_ids, attention_mask


class WordTokenizer:
    """One id per whitespace word; BOS/EOS around the text when special tokens are asked for."""

    pad_id, bos_id, eos_id = 0, 1, 2

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self.calls: list[tuple[list[str], bool, str]] = []

    def ids(self, text: str, special: bool) -> list[int]:
        body = [self.vocab.setdefault(w, 3 + len(self.vocab)) for w in text.split()]
        return [self.bos_id, *body, self.eos_id] if special else body

    def encode_batch(self, texts, *, add_special_tokens=None, padding=None):
        self.calls.append((list(texts), add_special_tokens, padding))
        rows = [self.ids(t, bool(add_special_tokens)) for t in texts]
        width = max(len(r) for r in rows)
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, : len(r)], mask[i, : len(r)] = r, 1
        return FakeBatch(ids, mask)


class TableEncoder:
    """hidden = table[id] + a masked mean over the row (so it is contextual); NaN on padding, which
    the pooling must never read."""

    def __init__(self, tokenizer, dim=64, vocab=512, dtype=np.float32, seed=0) -> None:
        self._tokenizer = tokenizer
        self.table = np.random.default_rng(seed).standard_normal((vocab, dim)).astype(np.float32)
        self.dtype = dtype
        self.calls: list[tuple[int, int]] = []

    @property
    def tokenizer(self):
        return self._tokenizer

    def encode(self, input_ids, attention_mask):
        self.calls.append(input_ids.shape)
        return self.hidden(input_ids, attention_mask)

    def hidden(self, input_ids, attention_mask):
        h = self.table[input_ids]
        m = attention_mask[:, :, None].astype(np.float32)
        context = (h * m).sum(axis=1, keepdims=True) / m.sum(axis=1, keepdims=True)
        out = (h + 0.5 * context).astype(self.dtype)
        out[attention_mask == 0] = np.nan
        return out

    def embed_alone(self, tokenizer, text: str, special: bool) -> np.ndarray:
        ids = np.array([tokenizer.ids(text, special)], dtype=np.int64)
        return ref_mean_pool(self.hidden(ids, np.ones_like(ids)), np.ones_like(ids))[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_rank_candidates_one_encoder_call_matches_reference(dtype):
    tok = WordTokenizer()
    enc = TableEncoder(tok, dtype=dtype)
    prompt = "a photo of two red apples on a wooden table"
    candidates = [
        "Green Apples.",
        "three apples",
        "no apples",
        "a banana",
        "green apples",
        "wooden chair",
    ]
    ranking = rank_candidates(prompt, candidates, enc, k=4)

    cleaned = ["green apples", "three apples", "a banana", "wooden chair"]
    terms = analyze_prompt(prompt)
    assert ranking.terms == terms and ranking.prompt == prompt
    assert len(enc.calls) == 1
    assert enc.calls[0][0] == 1 + 2 * len(cleaned) + len(terms.quantities) + len(terms.objects)
    assert tok.calls == [
        ([prompt, *cleaned], True, "longest"),
        ([*cleaned, *terms.quantities, *terms.objects], False, "longest"),
    ]
    # Reference: every text encoded alone (no padding at all), numpy formula.
    expected = ref_scores(
        enc.embed_alone(tok, prompt, True),
        np.stack([enc.embed_alone(tok, c, True) for c in cleaned]),
        np.stack([enc.embed_alone(tok, c, False) for c in cleaned]),
        np.stack([enc.embed_alone(tok, q, False) for q in terms.quantities]),
        np.stack([enc.embed_alone(tok, o, False) for o in terms.objects]),
    )
    # float16 hidden states: the reference pools the same float16 values, so only the float32
    # rounding of the pooled embeddings separates the two.
    rtol = RTOL if dtype == np.float32 else 1e-4
    got = [
        np.array([getattr(rc, f) for rc in ranking.candidates])
        for f in ("s_qty", "s_obj", "s_cand", "score")
    ]
    order = [cleaned.index(rc.text) for rc in ranking.candidates]
    for name, g, want in zip(("s_qty", "s_obj", "s_cand", "score"), got, expected[:4], strict=True):
        np.testing.assert_allclose(g, want[order], rtol=rtol, atol=1e-6, err_msg=name)
    assert order == expected[4].tolist()
    assert [rc.rank for rc in ranking.candidates] == [1, 2, 3, 4]
    assert ranking.texts == tuple(cleaned[i] for i in order)
    assert all(isinstance(rc, RankedCandidate) for rc in ranking.candidates)
    scores = [rc.score for rc in ranking.candidates]
    assert scores == sorted(scores, reverse=True)


def test_rank_candidates_errors():
    tok = WordTokenizer()
    enc = TableEncoder(tok)
    with pytest.raises(InvalidInputError, match="prompt must be"):
        rank_candidates("  ", ["cat"], enc)
    with pytest.raises(InvalidInputError, match="no candidate left"):
        rank_candidates("two cats", ["no cats", "not a dog"], enc)
    with pytest.raises(InvalidInputError, match="names no object word"):
        rank_candidates("ox", ["cat"], enc)

    class BadEncoder(TableEncoder):
        def encode(self, input_ids, attention_mask):
            return super().encode(input_ids, attention_mask)[:, :-1]

    with pytest.raises(ShapeError, match="encoder returned shape"):
        rank_candidates("two cats", ["dog"], BadEncoder(tok))


# -- rank_candidates with the real npc_rt.Tokenizer ----------------------------------------------


def _word_level_tokenizer_json(path, words):
    """A word-level tokenizer.json with BOS/EOS added around a single text, built with the
    ``tokenizers`` package (test-only dependency)."""
    tokenizers = pytest.importorskip("tokenizers")
    specials = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]
    vocab = {w: i for i, w in enumerate([*specials, *sorted(set(words))])}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.post_processor = tokenizers.processors.TemplateProcessing(
        single="[BOS] $A [EOS]", special_tokens=[("[BOS]", 2), ("[EOS]", 3)]
    )
    tok.add_special_tokens(specials)
    tok.save(str(path))
    return path


def test_rank_candidates_with_real_tokenizer_padding_changes_nothing(tmp_path):
    from npc_rt.tokenizer import Tokenizer

    prompt = "a photo of three bananas next to a cup on the table"
    candidates = [
        "yellow bananas",
        "a small red cup on table",
        "two cups",
        "cartoon",
    ]
    words = " ".join([prompt, *candidates, "one two three four 1 2 3 4 banana cup cups"]).split()
    path = _word_level_tokenizer_json(tmp_path / "tokenizer.json", words)
    tok = Tokenizer.from_file(path, padding="longest", truncation=False)
    enc = TableEncoder(tok, dim=48, vocab=tok.vocab_size, dtype=np.float16, seed=5)
    ranking = rank_candidates(prompt, candidates, enc)

    assert len(enc.calls) == 1
    terms = analyze_prompt(prompt)
    assert terms.quantities == ("three", "3", "one", "1")
    assert terms.objects == ("banana", "bananas", "cup", "cups")

    def alone(text: str, special: bool) -> np.ndarray:
        # Each text encoded by itself: no padding anywhere.
        batch = tok.encode_batch([text], add_special_tokens=special, padding="longest")
        ids = np.asarray(batch.input_ids)
        assert np.asarray(batch.attention_mask).all()
        return ref_mean_pool(enc.hidden(ids, np.ones_like(ids)), np.ones_like(ids))[0]

    # The special tokens really differ between the two groups.
    with_specials = tok.encode_batch(["two cups"], add_special_tokens=True, padding="longest")
    without = tok.encode_batch(["two cups"], add_special_tokens=False, padding="longest")
    assert with_specials.input_ids.shape[1] == without.input_ids.shape[1] + 2

    expected = ref_scores(
        alone(prompt, True),
        np.stack([alone(c, True) for c in candidates]),
        np.stack([alone(c, False) for c in candidates]),
        np.stack([alone(q, False) for q in terms.quantities]),
        np.stack([alone(o, False) for o in terms.objects]),
    )
    order = [candidates.index(rc.text) for rc in ranking.candidates]
    assert order == expected[4].tolist()
    got_scores = np.array([rc.score for rc in ranking.candidates])
    # float16 hidden states, pooled to float32: 1e-4 covers the float32 rounding of the pooled rows.
    np.testing.assert_allclose(got_scores, expected[3][order], rtol=1e-4, atol=1e-6)
