"""Type stubs for the private extension module ``npc_rt._npc_rt`` (hand-written).

Every function that takes numpy arrays reads them zero-copy and releases the GIL while the Rust
core works. Errors are raised as the classes of ``npc_rt.errors``.
"""

import os

import numpy as np
import numpy.typing as npt

__version__: str

# --- rng (torch-compatible initial noise; see npc_rt.rng) ---

def randn(
    shape: list[int], seed: int, dtype: str = "float32", kernel: str = "avx2"
) -> npt.NDArray[np.generic]:
    """``torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed), dtype=dtype)``.

    ``kernel``: which torch CPU kernel to reproduce, ``"avx2"`` (x86-64 with AVX2/AVX-512) or
    ``"generic"`` (CPUs without AVX2; exact where this process shares torch's libm).
    ``seed`` is torch's unsigned 64-bit seed (only its low 32 bits matter). dtype ``"float32"`` ->
    float32 array, ``"float16"`` -> float16 array, ``"bfloat16"`` -> float32 array holding the
    exact bfloat16 values (numpy has no bfloat16). The GIL is released for 4096+ elements.
    """

class TorchCpuGenerator:
    """A ``torch.Generator("cpu").manual_seed(seed)`` whose ``randn`` calls continue one stream."""

    def __init__(self, seed: int, kernel: str = "avx2") -> None: ...
    def initial_seed(self) -> int: ...
    def randn(self, shape: list[int], dtype: str = "float32") -> npt.NDArray[np.generic]: ...

# --- tokenize (see npc_rt.tokenizer for the public wrapper) ---

class NativeTokenizer:
    """A ``tokenizer.json`` (Hugging Face tokenizers format) with its batch layout.

    Immutable and thread-safe. Load errors: ``NpcIOError`` (no such file), ``TokenizerError``
    (unparsable file, or a preset's tokens missing), ``InvalidInputError`` (bad options).
    """

    @staticmethod
    def from_file(
        path: str | os.PathLike[str],
        *,
        max_length: int | None = None,
        pad_id: int | None = None,
        padding: str = "max_length",
        truncation: bool = True,
        add_special_tokens: bool = True,
    ) -> NativeTokenizer:
        """Load with an explicit layout. ``padding`` is ``"max_length"`` or ``"longest"``.

        ``max_length`` defaults to the file's truncation/fixed padding length and is required for
        ``"max_length"`` padding or truncation; ``pad_id`` defaults to the file's padding id, else
        ``<pad>``, else 0. Truncation keeps the special tokens (text cut to ``max_length`` minus
        their number).
        """

    @staticmethod
    def from_preset(
        name: str, path: str | os.PathLike[str], *, max_length: int | None = None
    ) -> NativeTokenizer:
        """Load with a preset's layout: ``clip-l`` (77, pad ``<|endoftext|>``), ``openclip-bigg``
        (77, pad ``!``, which is also matched as a special token as diffusers' SDXL tokenizer_2
        does), ``t5`` (512, pad ``<pad>``), ``t5-256`` (256, pad ``<pad>``); all pad to max
        length, truncate and add special tokens. ``max_length`` overrides the row width only."""

    @staticmethod
    def preset_names() -> list[str]: ...
    @property
    def max_length(self) -> int | None: ...
    @property
    def pad_id(self) -> int: ...
    @property
    def padding(self) -> str: ...
    @property
    def truncation(self) -> bool: ...
    @property
    def add_special_tokens(self) -> bool: ...
    @property
    def vocab_size(self) -> int:
        """Vocabulary size including added special tokens."""

    @property
    def preset(self) -> str | None: ...
    @property
    def n_special_tokens(self) -> int:
        """Special tokens added around one text (2 for CLIP, 1 for T5)."""

    def encode_batch(
        self,
        texts: list[str],
        *,
        add_special_tokens: bool | None = None,
        padding: str | None = None,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """``(input_ids, attention_mask)``, int64 ``[len(texts), L]``, built in Rust with the GIL
        released (rayon across texts for 8+). The arrays own the Rust buffers (no copy).
        ``L`` is ``max_length`` (widened to the longest row if truncation is off) or the longest
        row for ``"longest"`` padding; an empty list gives ``[0, L]``."""

# --- convert (vocabulary files -> tokenizer.json) ---

def convert_clip_vocab(
    vocab_json: str | os.PathLike[str],
    merges_txt: str | os.PathLike[str],
    out_json: str | os.PathLike[str],
) -> None:
    """Write the ``tokenizer.json`` of CLIP ``vocab.json`` + ``merges.txt`` (transformers'
    ``CLIPTokenizer`` pipeline). ``NpcIOError`` for unreadable/unwritable files,
    ``TokenizerError`` for a malformed vocabulary or merges file (the line is named)."""

def convert_sentencepiece(
    spiece_model: str | os.PathLike[str],
    out_json: str | os.PathLike[str],
    *,
    extra_ids: int = 100,
) -> None:
    """Write the ``tokenizer.json`` of a sentencepiece unigram ``spiece.model`` (transformers'
    ``T5TokenizerFast`` pipeline, ``extra_ids`` ``<extra_id_N>`` sentinels). The protobuf is
    parsed in Rust; ``TokenizerError`` for a malformed or non-unigram model."""

# -- prompt analysis (rust/npc-py/src/prompt.rs; typed wrappers in npc_rt/prompt.py) ------------

FALLBACK_NEGATIVES: tuple[str, ...]
"""Generic negatives that top a short candidate list up to K, in the method's order."""
STOP_WORDS: tuple[str, ...]
"""Words never taken as object words."""
NEGATION_WORDS: tuple[str, ...]
"""``no``, ``not``, ``without``: a candidate containing one is dropped."""
MAX_PHRASE_WORDS: int
"""Longest candidate kept, in words (6)."""
MAX_COUNT: int
"""Largest count recognised in a prompt, in words or digits (20)."""

def analyze_prompt(prompt: str) -> tuple[list[str], list[str], bool]:
    """``(quantities, objects, fallback)`` of one prompt (rules: ``rust/npc-core/src/prompt.rs``)."""

def analyze_prompts(prompts: list[str]) -> tuple[list[str], list[int], list[bool]]:
    """``analyze_prompt`` over many prompts, in parallel (GIL released from 64 prompts), flat:
    ``(words, counts, fallbacks)``; prompt ``i`` takes ``counts[2*i]`` quantities then
    ``counts[2*i+1]`` objects from ``words`` in order."""

def clean_candidates(phrases: list[str], k: int | None = None) -> list[str]:
    """Lowercase, strip trailing ``, . ; : ! ?``, collapse whitespace, keep 1-6 words without a
    negation word, drop duplicates, keep the first ``k`` (``None``: all). Idempotent."""

def clean_candidates_batch(lists: list[list[str]], k: int | None = None) -> list[list[str]]:
    """``clean_candidates`` over many lists, in parallel."""

def top_up(candidates: list[str], k: int) -> list[str]:
    """``candidates`` then ``FALLBACK_NEGATIVES`` not already present, distinct, at most ``k``."""

# -- salient scoring (rust/npc-py/src/score.rs; typed wrappers in npc_rt/scoring.py) ------------

def mean_pool_f32(
    hidden: npt.NDArray[np.float32], mask: npt.NDArray[np.int64]
) -> npt.NDArray[np.float32]:
    """Masked mean of ``hidden [B, L, D]`` over ``mask [B, L]`` (0/1) -> ``[B, D]``; f64 sums;
    masked-out positions are never read. Errors: ShapeError, InvalidInputError (mask values,
    a row selecting no token), NonFiniteError (NaN/inf at a selected position)."""

def mean_pool_f16(
    hidden: npt.NDArray[np.float16], mask: npt.NDArray[np.int64]
) -> npt.NDArray[np.float32]:
    """``mean_pool_f32`` for float16 hidden states (float32 result)."""

def salient_scores_ragged(
    prompt_embs: npt.NDArray[np.float32],
    cand_embs: npt.NDArray[np.float32],
    cand_phrases: npt.NDArray[np.float32],
    cand_offsets: npt.NDArray[np.int64],
    qty_phrases: npt.NDArray[np.float32],
    qty_offsets: npt.NDArray[np.int64],
    obj_phrases: npt.NDArray[np.float32],
    obj_offsets: npt.NDArray[np.int64],
) -> tuple[
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.int64],
]:
    """``(s_qty, s_obj, s_cand, score, order)`` per candidate for ``P`` prompts: prompt ``i`` owns
    rows ``offsets[i]:offsets[i+1]`` of each group (non-empty). ``order`` holds each prompt's local
    candidate indices, best first (stable). ``cos`` is 0 when either vector is zero. Errors name
    the argument: ShapeError, InvalidInputError, NonFiniteError."""
