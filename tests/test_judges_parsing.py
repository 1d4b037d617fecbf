"""Defensive parsing of judge answers: what is read, what is coerced, what is refused."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from npc_rt.errors import MalformedJudgeAnswerError
from npc_rt.judges.parsing import (
    extract_json,
    parse_candidates,
    parse_caption,
    parse_verdict,
    strip_code_fences,
)


def test_code_fence_is_stripped():
    text = 'Here you go:\n```json\n{"correct": 1, "score": 0.9, "reason": "ok"}\n```\nbye'
    assert strip_code_fences(text) == '{"correct": 1, "score": 0.9, "reason": "ok"}'
    assert parse_verdict(text).correct == 1


def test_prose_around_json_is_ignored():
    text = 'I think {not json} but then {"correct": 0, "score": 0.25, "reason": "two cats"} ok.'
    parsed = parse_verdict(text)
    assert (parsed.correct, parsed.score, parsed.reason) == (0, 0.25, "two cats")


@pytest.mark.parametrize(
    "value, expected",
    [(1, 1), (1.0, 1), ("1", 1), (0, 0), ("0", 0), (True, 0), (2, 0), (0.99, 0), ("yes", 0)],
)
def test_correct_is_one_only_when_exactly_one(value, expected):
    parsed = parse_verdict(json.dumps({"correct": value, "score": 0.5, "reason": "r"}))
    assert parsed.correct == expected
    if expected == 0 and value not in (0, "0"):
        assert any("not exactly 1" in note for note in parsed.notes)


@pytest.mark.parametrize("score, expected", [(1.7, 1.0), (-3, 0.0), ("0.4", 0.4), ("80%", 0.8)])
def test_scores_are_coerced_and_clamped(score, expected):
    parsed = parse_verdict(json.dumps({"correct": 0, "score": score, "reason": ""}))
    assert parsed.score == pytest.approx(expected)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "no json here at all",
        '{"score": 0.5, "reason": "missing correct"}',
        '{"correct": null, "score": 0.5}',
        '{"correct": 1, "score": "high"}',
        '{"correct": 1, "score": NaN}',
        '{"correct": 1, "score": true}',
        '["not", "an", "object"]',
    ],
)
def test_unreadable_verdicts_are_refused(text):
    with pytest.raises(MalformedJudgeAnswerError):
        parse_verdict(text)


def test_missing_score_follows_correct_and_is_noted():
    parsed = parse_verdict('{"correct": 1}')
    assert parsed.score == 1.0 and "score missing" in parsed.notes[0]


def test_caption_from_json_or_prose():
    assert parse_caption('{"caption": "A red  cup\\non a table."}') == "A red cup on a table."
    assert parse_caption("```\nA red cup on a wooden table.\n```") == "A red cup on a wooden table."
    with pytest.raises(MalformedJudgeAnswerError):
        parse_caption('{"text": "wrong key"}')
    with pytest.raises(MalformedJudgeAnswerError):
        parse_caption("   ")


def test_candidates_in_every_accepted_shape():
    assert parse_candidates('{"candidates": ["a cat", 3, {"x": 1}, "dog"]}') == [
        "a cat",
        "3",
        "dog",
    ]
    assert parse_candidates('```json\n["blue car", "tree"]\n```') == ["blue car", "tree"]
    assert parse_candidates('{"candidates": "red hat, green scarf"}') == ["red hat", " green scarf"]
    assert parse_candidates('{"candidates": []}') == []
    with pytest.raises(MalformedJudgeAnswerError):
        parse_candidates('{"ideas": ["x"]}')
    with pytest.raises(MalformedJudgeAnswerError):
        parse_candidates('{"candidates": 5}')


@given(
    correct=st.one_of(st.integers(-5, 5), st.floats(allow_nan=False), st.text(max_size=4)),
    score=st.floats(allow_nan=False, allow_infinity=False, width=32),
    prose=st.text(alphabet=st.characters(blacklist_characters="{}[]`"), max_size=30),
)
def test_any_parsed_verdict_is_in_range(correct, score, prose):
    text = prose + json.dumps({"correct": correct, "score": score, "reason": "r"}) + prose
    parsed = parse_verdict(text)
    assert parsed.correct in (0, 1)
    if isinstance(correct, str):
        expected = 1 if correct.strip() in ("1", "1.0") else 0
    else:
        expected = 1 if correct == 1 else 0
    assert parsed.correct == expected
    assert 0.0 <= parsed.score <= 1.0


def test_candidates_salvaged_from_a_cut_off_or_nested_answer():
    cut = '```json\n{"candidates": ["green apple", {"phrase": "wicker basket", "n": 2}, "four'
    assert parse_candidates(cut) == ["green apple", "wicker basket"]
    nested = '{"candidates": [{"item": {"text": "red sofa"}}, {"n": 1}, ["x"], true]}'
    assert parse_candidates(nested) == ["red sofa"]
    with pytest.raises(MalformedJudgeAnswerError):
        parse_candidates('{"candidates": [')


def test_trailing_commas_are_forgiven():
    assert parse_candidates('{"candidates": ["a", "b",],}') == ["a", "b"]
    assert parse_verdict('{"correct": 0, "score": 0.2, "reason": "x",}').score == 0.2
    cut = '```\n{"candidates": [{"name": "lamp", "d": {"e": "f",},}, {"name": "rug'
    assert parse_candidates(cut) == ["lamp"]  # the unfinished "rug" string is not kept
    cut_object = '{"candidates": [\n {\n  "name": "green apple",\n  "description": "four app'
    assert parse_candidates(cut_object) == ["green apple"]


def test_extract_json_refuses_empty():
    with pytest.raises(MalformedJudgeAnswerError, match="empty"):
        extract_json("")
