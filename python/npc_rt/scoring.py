"""The salient text-space score of NPC (docs/npc-method.md): rank negative-prompt candidates with
the backbone's own text encoder, without synthesising an image.

For a candidate ``c``: ``delta = embed(prompt) - embed(c)``, ``s_cand = cos(delta, phrase(c))``,
``s_qty = mean_q cos(delta, phrase(q))``, ``s_obj = mean_o cos(delta, phrase(o))`` and
``score = s_qty + s_obj - s_cand``; highest score first, ties in input order. ``embed`` is the
mask-weighted mean of the encoder's last hidden state over the full text (special tokens included),
``phrase`` the same over the text encoded without special tokens.

Numerics (Rust core, ``rust/npc-core/src/score``): pooling sums in float64 and returns float32;
dot products sum float32 products in 256-element blocks accumulated in float64; cosines and scores
are float64. ``cos`` is 0 when either vector is zero, so a zero vector is neutral (a candidate whose
embedding equals the prompt's gets all components 0).

Arrays are read in place when they are C-contiguous with the expected dtype (float32 embeddings;
float32 or float16 hidden states; int64 masks and offsets); anything else is converted once with
``np.ascontiguousarray`` (a copy). The GIL is released while Rust works.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from npc_rt import _npc_rt
from npc_rt.errors import InvalidInputError, ShapeError
from npc_rt.generator import ScoringEncoder
from npc_rt.prompt import PromptTerms, analyze_prompt, clean_candidates


@dataclass(frozen=True)
class ScoreResult:
    """Scores of one prompt's K candidates, in input order; ``order`` lists candidate indices,
    best first."""

    s_qty: np.ndarray  # float64 [K]
    s_obj: np.ndarray  # float64 [K]
    s_cand: np.ndarray  # float64 [K]
    score: np.ndarray  # float64 [K]
    order: np.ndarray  # int64 [K]


@dataclass(frozen=True)
class BatchScoreResult:
    """Scores of many prompts' candidates, flat in input order; prompt ``i`` owns entries
    ``offsets[i]:offsets[i+1]``, and ``order`` holds each prompt's local indices, best first."""

    s_qty: np.ndarray
    s_obj: np.ndarray
    s_cand: np.ndarray
    score: np.ndarray
    order: np.ndarray
    offsets: np.ndarray  # int64 [P + 1]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def prompt(self, i: int) -> ScoreResult:
        """The result of prompt ``i`` alone."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"prompt index {i} out of range for {len(self)} prompts")
        i %= len(self)
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        return ScoreResult(
            self.s_qty[lo:hi],
            self.s_obj[lo:hi],
            self.s_cand[lo:hi],
            self.score[lo:hi],
            self.order[lo:hi],
        )


@dataclass(frozen=True)
class RankedCandidate:
    """One candidate with every score component; ``rank`` 1 is the best."""

    text: str
    s_qty: float
    s_obj: float
    s_cand: float
    score: float
    rank: int


@dataclass(frozen=True)
class Ranking:
    """The candidates of ``prompt``, best first, and the prompt terms the score used."""

    prompt: str
    terms: PromptTerms
    candidates: tuple[RankedCandidate, ...]

    @property
    def texts(self) -> tuple[str, ...]:
        """Candidate texts, best first."""
        return tuple(c.text for c in self.candidates)


# -- array plumbing ----------------------------------------------------------------------------


def _float_array(x: object, name: str, ndim: int) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != ndim:
        raise ShapeError(f"{name} must have {ndim} dimensions, got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise InvalidInputError(f"{name} must hold real numbers, got dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.float32)


def _offsets(x: object, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
        raise InvalidInputError(f"{name} must be a 1-D integer array, got {a.dtype} {a.shape}")
    return np.ascontiguousarray(a, dtype=np.int64)


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of ``hidden [B, L, D]`` (float32 or float16; other floats are cast to float32) over the
    positions where ``mask [B, L]`` (0/1, any integer or bool dtype) is 1, as float32 ``[B, D]``.
    Masked-out positions are never read; a row with no selected position is an error."""
    h = np.asarray(hidden)
    m = np.asarray(mask)
    if h.ndim != 3:
        raise ShapeError(f"hidden must be [B, L, D], got shape {h.shape}")
    if m.ndim != 2:
        raise ShapeError(f"mask must be [B, L], got shape {m.shape}")
    if not (np.issubdtype(m.dtype, np.integer) or m.dtype == np.bool_):
        raise InvalidInputError(f"mask must be integer or bool, got dtype {m.dtype}")
    m = np.ascontiguousarray(m, dtype=np.int64)
    if h.dtype == np.float16:
        return _npc_rt.mean_pool_f16(np.ascontiguousarray(h), m)
    if not np.issubdtype(h.dtype, np.floating):
        raise InvalidInputError(f"hidden must be float32 or float16, got dtype {h.dtype}")
    return _npc_rt.mean_pool_f32(np.ascontiguousarray(h, dtype=np.float32), m)


def salient_scores_batch(
    prompt_embs: np.ndarray,
    cand_embs: np.ndarray,
    cand_phrases: np.ndarray,
    qty_phrases: np.ndarray,
    obj_phrases: np.ndarray,
    *,
    cand_offsets: np.ndarray,
    qty_offsets: np.ndarray,
    obj_offsets: np.ndarray,
) -> BatchScoreResult:
    """Salient scores for many prompts at once. ``prompt_embs`` is ``[P, D]``; the other arrays are
    flat ``[rows, D]`` with prompt ``i`` owning rows ``offsets[i]:offsets[i+1]`` (``P + 1``
    offsets from 0 to rows, each prompt with at least one candidate, quantity and object)."""
    arrays = {
        "prompt_embs": _float_array(prompt_embs, "prompt_embs", 2),
        "cand_embs": _float_array(cand_embs, "cand_embs", 2),
        "cand_phrases": _float_array(cand_phrases, "cand_phrases", 2),
        "qty_phrases": _float_array(qty_phrases, "qty_phrases", 2),
        "obj_phrases": _float_array(obj_phrases, "obj_phrases", 2),
    }
    offs = {
        "cand_offsets": _offsets(cand_offsets, "cand_offsets"),
        "qty_offsets": _offsets(qty_offsets, "qty_offsets"),
        "obj_offsets": _offsets(obj_offsets, "obj_offsets"),
    }
    s_qty, s_obj, s_cand, score, order = _npc_rt.salient_scores_ragged(
        arrays["prompt_embs"],
        arrays["cand_embs"],
        arrays["cand_phrases"],
        offs["cand_offsets"],
        arrays["qty_phrases"],
        offs["qty_offsets"],
        arrays["obj_phrases"],
        offs["obj_offsets"],
    )
    return BatchScoreResult(s_qty, s_obj, s_cand, score, order, offs["cand_offsets"])


def salient_scores(
    prompt_emb: np.ndarray,
    cand_embs: np.ndarray,
    cand_phrases: np.ndarray,
    qty_phrases: np.ndarray,
    obj_phrases: np.ndarray,
) -> ScoreResult:
    """Salient scores of the K candidates of one prompt: ``prompt_emb [D]``, ``cand_embs [K, D]``
    (full texts), ``cand_phrases [K, D]``, ``qty_phrases [Q, D]``, ``obj_phrases [O, D]``."""
    p = _float_array(prompt_emb, "prompt_emb", 1)
    groups = [
        _float_array(a, n, 2)
        for a, n in [
            (cand_embs, "cand_embs"),
            (cand_phrases, "cand_phrases"),
            (qty_phrases, "qty_phrases"),
            (obj_phrases, "obj_phrases"),
        ]
    ]
    if groups[0].shape[0] == 0:
        raise InvalidInputError("cand_embs is empty: there must be at least one candidate")
    k, q, o = groups[0].shape[0], groups[2].shape[0], groups[3].shape[0]
    batch = salient_scores_batch(
        p[None, :],
        *groups,
        cand_offsets=np.array([0, k]),
        qty_offsets=np.array([0, q]),
        obj_offsets=np.array([0, o]),
    )
    return batch.prompt(0)


# -- ranking with a text encoder ----------------------------------------------------------------


def _right_pad(
    ids: np.ndarray, mask: np.ndarray, length: int, pad_id: int
) -> tuple[np.ndarray, np.ndarray]:
    extra = length - ids.shape[1]
    if extra == 0:
        return ids, mask
    ids = np.pad(ids, ((0, 0), (0, extra)), constant_values=pad_id)
    mask = np.pad(mask, ((0, 0), (0, extra)), constant_values=0)
    return ids, mask


def _tokenize(tokenizer: object, texts: list[str], special: bool) -> tuple[np.ndarray, np.ndarray]:
    batch = tokenizer.encode_batch(texts, add_special_tokens=special, padding="longest")  # type: ignore[attr-defined]
    ids = np.asarray(batch.input_ids, dtype=np.int64)
    mask = np.asarray(batch.attention_mask, dtype=np.int64)
    if ids.shape != mask.shape or ids.ndim != 2 or ids.shape[0] != len(texts):
        raise ShapeError(
            f"tokenizer returned input_ids {ids.shape} and attention_mask {mask.shape} "
            f"for {len(texts)} texts"
        )
    empty = np.flatnonzero(mask.sum(axis=1) == 0)
    if empty.size:
        raise InvalidInputError(f"{texts[int(empty[0])]!r} encodes to no tokens")
    return ids, mask


def rank_candidates(
    prompt: str,
    candidates: Sequence[str],
    encoder: ScoringEncoder,
    *,
    k: int | None = None,
) -> Ranking:
    """Rank negative-prompt candidates for ``prompt`` by the salient score.

    The candidates are cleaned first (``npc_rt.prompt.clean_candidates``, first ``k`` kept; cleaning
    is idempotent, so already-clean lists pass unchanged). The prompt and candidates (full texts,
    with special tokens) and the candidate, quantity and object phrases (without special tokens)
    go through the encoder in ONE call: both groups are tokenized with ``padding="longest"`` and
    right-padded to a common length with the tokenizer's pad id and mask 0, which leaves every
    pooled embedding unchanged.
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidInputError("prompt must be a non-empty string")
    cleaned = clean_candidates(candidates, k)
    if not cleaned:
        raise InvalidInputError(
            f"no candidate left after cleaning {len(candidates)} phrase(s) "
            "(1-6 words, no 'no'/'not'/'without', no duplicates)"
        )
    terms = analyze_prompt(prompt)
    if not terms.objects:
        raise InvalidInputError(
            f"prompt {prompt!r} names no object word (no '<number> <word>' match and no word "
            "longer than 2 letters outside the stop list)"
        )
    tokenizer = encoder.tokenizer
    full_texts = [prompt, *cleaned]
    phrase_texts = [*cleaned, *terms.quantities, *terms.objects]
    full_ids, full_mask = _tokenize(tokenizer, full_texts, True)
    phrase_ids, phrase_mask = _tokenize(tokenizer, phrase_texts, False)
    length = max(full_ids.shape[1], phrase_ids.shape[1])
    pad_id = int(tokenizer.pad_id)  # type: ignore[attr-defined]
    full_ids, full_mask = _right_pad(full_ids, full_mask, length, pad_id)
    phrase_ids, phrase_mask = _right_pad(phrase_ids, phrase_mask, length, pad_id)
    ids = np.concatenate([full_ids, phrase_ids])
    mask = np.concatenate([full_mask, phrase_mask])
    hidden = np.asarray(encoder.encode(ids, mask))
    if hidden.ndim != 3 or hidden.shape[:2] != ids.shape:
        raise ShapeError(f"encoder returned shape {hidden.shape} for input_ids {ids.shape}")
    pooled = mean_pool(hidden, mask)
    n, nq = len(cleaned), len(terms.quantities)
    result = salient_scores(
        pooled[0],
        pooled[1 : 1 + n],
        pooled[1 + n : 1 + 2 * n],
        pooled[1 + 2 * n : 1 + 2 * n + nq],
        pooled[1 + 2 * n + nq :],
    )
    ranked = tuple(
        RankedCandidate(
            text=cleaned[i],
            s_qty=float(result.s_qty[i]),
            s_obj=float(result.s_obj[i]),
            s_cand=float(result.s_cand[i]),
            score=float(result.score[i]),
            rank=rank,
        )
        for rank, i in enumerate(result.order.tolist(), start=1)
    )
    return Ranking(prompt=prompt, terms=terms, candidates=ranked)


__all__ = [
    "BatchScoreResult",
    "RankedCandidate",
    "Ranking",
    "ScoreResult",
    "mean_pool",
    "rank_candidates",
    "salient_scores",
    "salient_scores_batch",
]
