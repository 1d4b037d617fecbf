"""Prompt analysis and candidate cleaning (npc_rt.prompt over the Rust core)."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from npc_rt.errors import InvalidInputError
from npc_rt.prompt import (
    FALLBACK_NEGATIVES,
    MAX_PHRASE_WORDS,
    PromptTerms,
    analyze_prompt,
    analyze_prompts,
    clean_candidates,
    clean_candidates_batch,
    top_up,
)

FALLBACK_QUANTITIES = ("one", "two", "three", "1", "2", "3")

# Unicode White_Space, the whitespace the cleaning collapses (Python's str.isspace also counts the
# information separators U+001C..U+001F, which the core keeps as ordinary characters).
UNICODE_WHITESPACE = "".join(
    chr(c) for c in range(0x110000) if chr(c).isspace() and not 0x1C <= c <= 0x1F
)


# -- extraction ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "quantities", "objects"),
    [
        ("a photo of two cats", ("two", "2"), ("cat", "cats")),
        ("A photo of a Dog", ("one", "1"), ("dog", "dogs")),
        ("an apple", ("one", "1"), ("apple", "apples")),
        (
            "3 buses and an umbrella",
            ("three", "3", "one", "1"),
            ("bus", "buses", "umbrella", "umbrellas"),
        ),
        ("twenty of mice", ("twenty", "20"), ("mouse", "mice")),
        ("zero people", ("zero", "0"), ("person", "people")),
        ("a photo of four knives", ("four", "4"), ("knife", "knives")),
        ("two sheep and two skis", ("two", "2"), ("sheep", "ski", "skis")),
        (
            "a pair of glasses: 2 glasses",
            ("one", "1", "two", "2"),
            ("pair", "pairs", "glass", "glasses"),
        ),
        ("two red apples", ("two", "2"), ("red", "reds")),
    ],
)
def test_quantity_and_object_extraction(prompt, quantities, objects):
    assert analyze_prompt(prompt) == PromptTerms(quantities, objects, False)


@pytest.mark.parametrize(
    ("prompt", "objects"),
    [
        # "a photo" is a stop word after the number, 21 is out of range, "3d" is not alphabetic.
        ("a photo of 21 cats on a 3d grid", ("cats", "grid")),
        ("A close-up shot of the sunset over water", ("sunset", "over", "water")),
        ("", ()),
        ("ox", ()),
    ],
)
def test_fallback_without_a_count(prompt, objects):
    assert analyze_prompt(prompt) == PromptTerms(FALLBACK_QUANTITIES, objects, True)


def test_batched_analysis_equals_one_by_one():
    rng = random.Random(7)
    words = [
        "a",
        "an",
        "two",
        "7",
        "of",
        "the",
        "cats",
        "knife",
        "photo",
        "red",
        "people",
        "20",
        "x",
    ]
    prompts = [" ".join(rng.choices(words, k=rng.randint(0, 9))) for _ in range(3000)]
    assert analyze_prompts(prompts) == [analyze_prompt(p) for p in prompts]


def test_bad_inputs_raise_npc_errors():
    with pytest.raises(InvalidInputError, match="prompt"):
        analyze_prompt(3)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"prompts\[1\]"):
        analyze_prompts(["a cat", None])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="phrases"):
        clean_candidates("a cat")
    with pytest.raises(InvalidInputError, match="k must be"):
        clean_candidates(["a cat"], -1)
    with pytest.raises(InvalidInputError, match="k must be"):
        top_up(["a cat"], None)  # type: ignore[arg-type]


# -- cleaning ------------------------------------------------------------------------------------


def test_fallback_negatives_are_the_methods_list_in_order():
    assert FALLBACK_NEGATIVES == (
        "cgi", "3d render", "cartoon", "illustration", "digital painting", "text", "logo",
        "watermark", "jpeg artifacts", "blurry", "low quality", "overexposed", "underexposed",
        "harsh lighting",
    )  # fmt: skip


def test_cleaning_examples_and_documented_choices():
    raw = [
        "  A RED\tball. ",
        "no dogs",
        "Dog, NOT cat",
        "without people",
        "no-entry sign",  # split on '-': contains the word "no"
        "knot",
        "nothing",
        "one two three four five six",
        "one two three four five six seven",
        "a red ball!?",  # duplicate after cleaning
        "cat ;",  # trailing punctuation after a space: stripped before counting words
        "- cat",  # leading punctuation is kept
        "big\u00a0\u3000dog",  # unicode whitespace collapses
        " ",
        "...",
    ]
    assert clean_candidates(raw) == [
        "a red ball",
        "knot",
        "nothing",
        "one two three four five six",
        "cat",
        "- cat",
        "big dog",
    ]
    assert clean_candidates(raw, 2) == ["a red ball", "knot"]
    assert clean_candidates(raw, 0) == []


def test_batched_cleaning_equals_one_by_one():
    rng = random.Random(3)
    pool = ["A cat.", "no dog", "red ball", "a b c d e f g", "Cat", "  blue  sky!", "without x"]
    lists = [rng.choices(pool, k=rng.randint(0, 6)) for _ in range(500)]
    for k in (None, 0, 2):
        assert clean_candidates_batch(lists, k) == [clean_candidates(x, k) for x in lists]
    with pytest.raises(InvalidInputError, match=r"lists\[1\]"):
        clean_candidates_batch([["a"], "b"])


def test_top_up():
    assert top_up(["cartoon", "dog"], 4) == ["cartoon", "dog", "cgi", "3d render"]
    assert top_up(["a", "b", "c"], 2) == ["a", "b"]
    assert top_up([], 100) == list(FALLBACK_NEGATIVES)
    assert top_up(["x", "x"], 2) == ["x", "cgi"]


def _reference_clean(phrases: list[str], k: int | None) -> list[str]:
    """The documented rules, written independently (ASCII inputs only)."""
    out: list[str] = []
    for p in phrases:
        p = " ".join(p.lower().rstrip(",.;:!? \t\n\r\x0b\x0c").split())
        words = p.split()
        if not 1 <= len(words) <= MAX_PHRASE_WORDS:
            continue
        if {"no", "not", "without"} & set(re.split(r"[^a-z0-9]", p)):
            continue
        if p in out:
            continue
        out.append(p)
    return out if k is None else out[:k]


_ascii_word = st.one_of(
    st.sampled_from(["no", "Not", "WITHOUT", "nothing", "cat", "Dog", "-", "a.b", "?!", ",", "."]),
    st.text(alphabet="abcXYZ019-'.,;:!?", min_size=1, max_size=5),
)
_ascii_phrase = st.lists(
    st.tuples(_ascii_word, st.sampled_from([" ", "  ", "\t", "\n", ""])), max_size=9
).map(lambda parts: "".join(w + s for w, s in parts))
_any_phrase = st.one_of(_ascii_phrase, st.text(max_size=40))


@settings(max_examples=400, deadline=None)
@given(st.lists(_ascii_phrase, max_size=12), st.one_of(st.none(), st.integers(0, 8)))
def test_cleaning_matches_an_independent_reference(phrases, k):
    assert clean_candidates(phrases, k) == _reference_clean(phrases, k)


@settings(max_examples=400, deadline=None)
@given(st.lists(_any_phrase, max_size=12), st.one_of(st.none(), st.integers(0, 8)))
@example(["\x1f", "a\u2003b\u00a0", "İno"], None)
def test_cleaning_invariants(phrases, k):
    once = clean_candidates(phrases, k)
    assert clean_candidates(once, k) == once  # idempotent
    assert len(set(once)) == len(once)  # no duplicates
    if k is not None:
        assert len(once) <= k
    for p in once:
        assert p and p == p.strip(UNICODE_WHITESPACE)
        assert not set(p) & (set(UNICODE_WHITESPACE) - {" "}) and "  " not in p
        assert 1 <= len(p.split(" ")) <= MAX_PHRASE_WORDS
        pieces = set(re.split(r"[^\w]|_", p))
        assert not pieces & {"no", "not", "without"}, p


@settings(max_examples=200, deadline=None)
@given(st.lists(_any_phrase, max_size=8), st.integers(0, 25))
def test_top_up_invariants(candidates, k):
    cleaned = clean_candidates(candidates)
    out = top_up(cleaned, k)
    assert len(set(out)) == len(out)
    assert len(out) == min(k, len(set(cleaned) | set(FALLBACK_NEGATIVES)))
    assert out[: min(k, len(cleaned))] == cleaned[:k]
