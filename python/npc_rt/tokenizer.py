"""Batched text tokenization for the diffusion text encoders (Rust core, no Python tokenizer).

``Tokenizer`` loads a ``tokenizer.json`` (Hugging Face tokenizers format) and turns a list of
prompts into the padded int64 ``input_ids`` / ``attention_mask`` matrices a text encoder takes.
The presets lay batches out the way diffusers does (``padding="max_length"``, ``truncation=True``):

========================  ====  ==========================  ===============================
preset                    L     pad id                      used by
========================  ====  ==========================  ===============================
``clip-l``                77    ``<|endoftext|>`` (49407)   SD 1.x, SDXL, SD3, FLUX CLIP-L
``openclip-bigg``         77    ``!`` (0)                   SDXL / SD3 ``tokenizer_2``
``t5``                    512   ``<pad>`` (0)               FLUX.1-dev, SD3 T5
``t5-256``                256   ``<pad>`` (0)               FLUX.1-schnell T5
========================  ====  ==========================  ===============================

``convert_clip_vocab`` and ``convert_sentencepiece`` write the ``tokenizer.json`` of a CLIP
``vocab.json`` + ``merges.txt`` or of a T5 ``spiece.model``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from npc_rt import _npc_rt
from npc_rt.errors import InvalidInputError

PaddingName = Literal["max_length", "longest"]
PresetName = Literal["clip-l", "openclip-bigg", "t5", "t5-256"]

PRESETS: tuple[str, ...] = ("clip-l", "openclip-bigg", "t5", "t5-256")
"""Names accepted by ``Tokenizer.from_preset`` (the Rust core's list; a test keeps them equal)."""


@dataclass(frozen=True)
class TokenBatch:
    """A tokenized batch: ``input_ids`` and ``attention_mask``, both int64 ``[N, L]``."""

    input_ids: npt.NDArray[np.int64]
    attention_mask: npt.NDArray[np.int64]

    @property
    def shape(self) -> tuple[int, int]:
        """``(N, L)``: texts in the batch and tokens per row."""
        n, length = self.input_ids.shape
        return int(n), int(length)

    @property
    def lengths(self) -> npt.NDArray[np.int64]:
        """Real (unpadded) tokens per row, special tokens included."""
        return self.attention_mask.sum(axis=1)


def _texts(texts: Sequence[str]) -> list[str]:
    # A bare string is a sequence of characters; tokenizing it letter by letter is never meant.
    if isinstance(texts, str):
        raise InvalidInputError("texts must be a list of strings, not a single string")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise InvalidInputError(f"texts[{i}] is {type(text).__name__}, not str")
    return out


def _check_non_negative(name: str, value: int | None) -> None:
    # Rust would reject these too, but as OverflowError/TypeError rather than an npc_rt error.
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise InvalidInputError(f"{name} must be a non-negative int, not {value!r}")


def _first_unencodable(texts: list[str]) -> int:
    """Index of the first text that is not valid Unicode (lone surrogates cannot become UTF-8)."""
    for i, text in enumerate(texts):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return i
    return -1


class Tokenizer:
    """A ``tokenizer.json`` with its batch layout; calling it encodes a batch.

    Build one with ``Tokenizer.from_file`` or ``Tokenizer.from_preset``. Instances are immutable
    and thread-safe; the GIL is released while a batch is encoded.
    """

    __slots__ = ("_native",)

    def __init__(self, native: _npc_rt.NativeTokenizer) -> None:
        self._native = native

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        max_length: int | None = None,
        pad_id: int | None = None,
        padding: PaddingName = "max_length",
        truncation: bool = True,
        add_special_tokens: bool = True,
    ) -> Tokenizer:
        """Load ``path`` (a ``tokenizer.json``) with an explicit layout.

        ``max_length`` defaults to the file's truncation (or fixed padding) length and is required
        for ``padding="max_length"`` or truncation. ``pad_id`` defaults to the file's padding id,
        else the ``<pad>`` token, else 0. Truncation keeps the special tokens: the text is cut to
        ``max_length`` minus their number. Without truncation, ``max_length`` padding widens to
        the longest row when a text is longer.
        """
        _check_non_negative("max_length", max_length)
        _check_non_negative("pad_id", pad_id)
        native = _npc_rt.NativeTokenizer.from_file(
            Path(path),
            max_length=max_length,
            pad_id=pad_id,
            padding=padding,
            truncation=truncation,
            add_special_tokens=add_special_tokens,
        )
        return cls(native)

    @classmethod
    def from_preset(
        cls,
        name: PresetName | str,
        path: str | os.PathLike[str],
        *,
        max_length: int | None = None,
    ) -> Tokenizer:
        """Load ``path`` with the layout of preset ``name`` (see ``PRESETS``).

        ``max_length`` overrides the preset's row width and keeps its other rules (pad token,
        truncation, special tokens; for ``openclip-bigg``, ``!`` matched as a special token).
        """
        _check_non_negative("max_length", max_length)
        return cls(_npc_rt.NativeTokenizer.from_preset(name, Path(path), max_length=max_length))

    @property
    def max_length(self) -> int | None:
        """Row width of ``max_length`` padding and the truncation limit (specials included)."""
        return self._native.max_length

    @property
    def pad_id(self) -> int:
        return self._native.pad_id

    @property
    def padding(self) -> PaddingName:
        return self._native.padding  # type: ignore[return-value]

    @property
    def truncation(self) -> bool:
        return self._native.truncation

    @property
    def add_special_tokens(self) -> bool:
        return self._native.add_special_tokens

    @property
    def vocab_size(self) -> int:
        """Vocabulary size, added special tokens included."""
        return self._native.vocab_size

    @property
    def preset(self) -> str | None:
        """The preset name, or ``None`` for a tokenizer loaded with ``from_file``."""
        return self._native.preset

    @property
    def n_special_tokens(self) -> int:
        """Special tokens added around one text (2 for CLIP, 1 for T5)."""
        return self._native.n_special_tokens

    def encode_batch(
        self,
        texts: Sequence[str],
        *,
        add_special_tokens: bool | None = None,
        padding: PaddingName | None = None,
    ) -> TokenBatch:
        """Encode ``texts`` into a ``TokenBatch`` of int64 ``[len(texts), L]`` arrays.

        ``add_special_tokens`` and ``padding`` override the tokenizer's own for this call.
        """
        items = _texts(texts)
        try:
            ids, mask = self._native.encode_batch(
                items, add_special_tokens=add_special_tokens, padding=padding
            )
        except UnicodeEncodeError as e:
            raise InvalidInputError(f"texts[{_first_unencodable(items)}]: {e}") from e
        return TokenBatch(input_ids=ids, attention_mask=mask)

    __call__ = encode_batch

    def __repr__(self) -> str:
        return (
            f"Tokenizer(preset={self.preset!r}, max_length={self.max_length}, "
            f"pad_id={self.pad_id}, padding={self.padding!r}, truncation={self.truncation}, "
            f"vocab_size={self.vocab_size})"
        )


def convert_clip_vocab(
    vocab_json: str | os.PathLike[str],
    merges_txt: str | os.PathLike[str],
    out_json: str | os.PathLike[str],
) -> Path:
    """Write the ``tokenizer.json`` of a CLIP ``vocab.json`` + ``merges.txt``; return its path.

    The result reproduces transformers' ``CLIPTokenizer`` (NFC, whitespace runs to one space,
    lowercase, CLIP's split regex, byte-level BPE with ``</w>``, ``<|startoftext|>`` …
    ``<|endoftext|>``).
    """
    _npc_rt.convert_clip_vocab(Path(vocab_json), Path(merges_txt), Path(out_json))
    return Path(out_json)


def convert_sentencepiece(
    spiece_model: str | os.PathLike[str],
    out_json: str | os.PathLike[str],
    *,
    extra_ids: int = 100,
) -> Path:
    """Write the ``tokenizer.json`` of a sentencepiece unigram ``spiece.model``; return its path.

    The result reproduces transformers' ``T5TokenizerFast``: the model's precompiled normalizer,
    whitespace split and ``▁`` metaspace, the unigram pieces and scores, ``</s>`` appended, and
    ``extra_ids`` ``<extra_id_N>`` sentinels after the pieces.
    """
    if extra_ids < 0:
        raise InvalidInputError(f"extra_ids must be >= 0, not {extra_ids}")
    _npc_rt.convert_sentencepiece(Path(spiece_model), Path(out_json), extra_ids=extra_ids)
    return Path(out_json)


__all__ = [
    "PRESETS",
    "TokenBatch",
    "Tokenizer",
    "convert_clip_vocab",
    "convert_sentencepiece",
]
