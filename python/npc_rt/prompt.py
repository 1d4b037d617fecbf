"""Prompt analysis for NPC: the quantity and object words a prompt asks for, and the cleaning of
negative-prompt candidates (docs/npc-method.md, "Proposer" and "Salient text-space score").

The rules live in the Rust core (``rust/npc-core/src/prompt.rs`` and ``prompt/clean.rs`` document
every choice the method leaves open); this module gives them a typed Python face.

Summary of the extraction: each ``<number> [of] <word>`` match, where a number is ``zero`` ..
``twenty``, ``0`` .. ``20`` or ``a``/``an`` (= 1), gives the quantity in word and digit form and the
word in singular and plural form; a match whose word is a stop word (``a photo of``) is ignored.
With no match, the objects are the prompt's alphabetic words longer than 2 letters outside the stop
list, the quantities ``one, two, three, 1, 2, 3``, and ``fallback`` is True.

Cleaning: lowercase, strip the trailing run of ``, . ; : ! ?`` and whitespace, collapse (Unicode)
whitespace, keep phrases of 1-6 words with no word ``no``/``not``/``without``, drop duplicates,
keep the first K. Cleaning is idempotent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice

from npc_rt import _npc_rt
from npc_rt.errors import InvalidInputError

FALLBACK_NEGATIVES: tuple[str, ...] = tuple(_npc_rt.FALLBACK_NEGATIVES)
"""Generic negatives that top a short candidate list up to K, in the method's order."""

STOP_WORDS: tuple[str, ...] = tuple(_npc_rt.STOP_WORDS)
"""Words that are never object words."""

NEGATION_WORDS: tuple[str, ...] = tuple(_npc_rt.NEGATION_WORDS)
"""A candidate containing one of these words is dropped."""

MAX_PHRASE_WORDS: int = int(_npc_rt.MAX_PHRASE_WORDS)
"""Longest candidate kept, in words."""

MAX_COUNT: int = int(_npc_rt.MAX_COUNT)
"""Largest count recognised in a prompt (words and digits)."""


@dataclass(frozen=True)
class PromptTerms:
    """What a prompt asks for: quantities (word and digit forms) and objects (singular and plural
    forms), lowercase, in order of first appearance. ``fallback`` is True when no
    ``<number> <word>`` match was found and the fallback lists were used."""

    quantities: tuple[str, ...]
    objects: tuple[str, ...]
    fallback: bool


def _check_str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a str, got {type(value).__name__}")
    return value


def _check_strings(values: object, what: str) -> list[str]:
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise InvalidInputError(f"{what} must be a list of str, got {type(values).__name__}")
    return [_check_str(v, f"{what}[{i}]") for i, v in enumerate(values)]


def _check_k(k: object, *, optional: bool) -> int | None:
    if k is None and optional:
        return None
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise InvalidInputError(
            f"k must be an integer >= 0{' or None' if optional else ''}, got {k!r}"
        )
    return k


def _terms(raw: tuple[list[str], list[str], bool]) -> PromptTerms:
    quantities, objects, fallback = raw
    return PromptTerms(tuple(quantities), tuple(objects), bool(fallback))


def analyze_prompt(prompt: str) -> PromptTerms:
    """The quantity and object words of one prompt."""
    return _terms(_npc_rt.analyze_prompt(_check_str(prompt, "prompt")))


def analyze_prompts(prompts: Sequence[str]) -> list[PromptTerms]:
    """``analyze_prompt`` over many prompts at once (parallel, GIL released for large batches)."""
    words, counts, fallbacks = _npc_rt.analyze_prompts(_check_strings(prompts, "prompts"))
    stream = iter(words)
    sizes = iter(counts)
    return [
        PromptTerms(tuple(islice(stream, next(sizes))), tuple(islice(stream, next(sizes))), fb)
        for fb in fallbacks
    ]


def clean_candidates(phrases: Sequence[str], k: int | None = None) -> list[str]:
    """The candidates that survive the cleaning rules, normalised, first ``k`` kept (None: all)."""
    return _npc_rt.clean_candidates(_check_strings(phrases, "phrases"), _check_k(k, optional=True))


def clean_candidates_batch(lists: Sequence[Sequence[str]], k: int | None = None) -> list[list[str]]:
    """``clean_candidates`` over many candidate lists at once (parallel for large batches)."""
    if isinstance(lists, str) or not isinstance(lists, Sequence):
        raise InvalidInputError(f"lists must be a list of lists of str, got {type(lists).__name__}")
    checked = [_check_strings(phrases, f"lists[{i}]") for i, phrases in enumerate(lists)]
    return _npc_rt.clean_candidates_batch(checked, _check_k(k, optional=True))


def top_up(candidates: Sequence[str], k: int) -> list[str]:
    """``candidates`` (taken as given) then ``FALLBACK_NEGATIVES`` not already present, distinct,
    until there are ``k``."""
    return _npc_rt.top_up(_check_strings(candidates, "candidates"), _check_k(k, optional=False))


__all__ = [
    "FALLBACK_NEGATIVES",
    "MAX_COUNT",
    "MAX_PHRASE_WORDS",
    "NEGATION_WORDS",
    "STOP_WORDS",
    "PromptTerms",
    "analyze_prompt",
    "analyze_prompts",
    "clean_candidates",
    "clean_candidates_batch",
    "top_up",
]
