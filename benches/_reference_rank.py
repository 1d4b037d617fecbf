"""The reference implementation's ranking cost model, re-stated for comparison (our own code).

The reference scores each candidate on its own: for every candidate it runs the text encoder
separately on the prompt, the candidate sentence, the candidate phrase and every quantity and
object phrase, each padded to the encoder's full length (512 tokens for FLUX), and pools and
compares in Python. The numbers it produces are the salient score of docs/npc-method.md; only the
way the work is batched differs from ``npc_rt.scoring.rank_candidates`` (one batched encoder call
over the distinct texts, pooling and scoring in Rust).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _ids_padded(
    tokenizer: Any, text: str, *, specials: bool, length: int, pad_id: int
) -> tuple[np.ndarray, np.ndarray]:
    batch = tokenizer.encode_batch([text], add_special_tokens=specials)
    ids = np.asarray(batch.input_ids, dtype=np.int64)[0]
    mask = np.asarray(batch.attention_mask, dtype=np.int64)[0]
    tokens = ids[mask.astype(bool)][:length]
    out_ids = np.full((1, length), pad_id, dtype=np.int64)
    out_mask = np.zeros((1, length), dtype=np.int64)
    out_ids[0, : tokens.size] = tokens
    out_mask[0, : tokens.size] = 1
    return out_ids, out_mask


def _pooled(encoder: Any, text: str, *, specials: bool, length: int, pad_id: int) -> np.ndarray:
    ids, mask = _ids_padded(
        encoder.tokenizer, text, specials=specials, length=length, pad_id=pad_id
    )
    hidden = np.asarray(encoder.encode(ids, mask), dtype=np.float32)[0]
    weights = mask[0].astype(np.float32)[:, None]
    return (hidden * weights).sum(axis=0) / max(1.0, float(weights.sum()))


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / denom if denom > 0 else 0.0


def reference_rank(
    prompt: str,
    candidates: Sequence[str],
    encoder: Any,
    *,
    quantities: Sequence[str],
    objects: Sequence[str],
    length: int,
    pad_id: int,
) -> list[tuple[str, float]]:
    """(candidate, score) best first, computed candidate by candidate as the reference does."""

    def embed(text: str) -> np.ndarray:
        return _pooled(encoder, text, specials=True, length=length, pad_id=pad_id)

    def phrase(text: str) -> np.ndarray:
        return _pooled(encoder, text, specials=False, length=length, pad_id=pad_id)

    scored = []
    for candidate in candidates:
        delta = embed(prompt) - embed(candidate)
        s_cand = _cos(delta, phrase(candidate))
        s_qty = float(np.mean([_cos(delta, phrase(q)) for q in quantities])) if quantities else 0.0
        s_obj = float(np.mean([_cos(delta, phrase(o)) for o in objects])) if objects else 0.0
        scored.append((candidate, s_qty + s_obj - s_cand))
    return sorted(scored, key=lambda item: -item[1])
