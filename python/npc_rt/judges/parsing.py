"""Defensive parsing of judge answers.

Models wrap JSON in code fences, add prose around it, send numbers as strings or scores outside
[0, 1]. These functions accept what can be read unambiguously and raise
``MalformedJudgeAnswerError`` (naming what was wrong) for everything else, so the caller can retry
and, after its retries, report the role as unknown rather than guess.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from npc_rt.errors import MalformedJudgeAnswerError

_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n?(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class ParsedVerdict:
    correct: int  # 1 or 0; unknown is never produced by parsing, only by giving up
    score: float
    reason: str
    notes: tuple[str, ...] = ()  # what had to be coerced, for the run record


def strip_code_fences(text: str) -> str:
    """The body of the first fenced block if there is one, else the text itself."""
    match = _FENCE.search(text)
    return match.group(1).strip() if match else text.strip()


def extract_json(text: str) -> Any:
    """The first JSON object or array in ``text`` (fences and surrounding prose ignored)."""
    if not isinstance(text, str) or not text.strip():
        raise MalformedJudgeAnswerError("empty answer: expected JSON")
    decoder = json.JSONDecoder()
    stripped = strip_code_fences(text)
    for body in (stripped, text, _relax(stripped), _relax(text)):
        try:
            return json.loads(body)
        except json.JSONDecodeError:
            pass
        # Prose around the JSON: try every opening bracket until one decodes.
        for start, char in enumerate(body):
            if char not in "{[":
                continue
            try:
                value, _ = decoder.raw_decode(body, start)
            except json.JSONDecodeError:
                continue
            return value
    raise MalformedJudgeAnswerError(f"no JSON object found in answer: {_excerpt(text)!r}")


def parse_verdict(text: str) -> ParsedVerdict:
    """``{"correct": 1|0, "score": float, "reason": str}``: correct is 1 only when exactly 1."""
    obj = _expect_object(extract_json(text), "verdict")
    notes: list[str] = []
    if "correct" not in obj or obj["correct"] is None:
        raise MalformedJudgeAnswerError("verdict JSON has no 'correct' field")
    correct = 1 if _is_exactly_one(obj["correct"]) else 0
    if correct == 0 and not _is_exactly_zero(obj["correct"]):
        notes.append(f"correct={obj['correct']!r} is not exactly 1: read as 0")

    raw_score = obj.get("score")
    if raw_score is None:
        score = float(correct)
        notes.append("score missing: taken from correct")
    else:
        score = _to_float(raw_score, "score")
        if score < 0.0 or score > 1.0:
            notes.append(f"score {score!r} clamped into [0, 1]")
            score = min(1.0, max(0.0, score))

    reason = obj.get("reason", "")
    if not isinstance(reason, str):
        reason = json.dumps(reason) if reason is not None else ""
        notes.append("reason was not a string")
    return ParsedVerdict(correct=correct, score=score, reason=reason.strip(), notes=tuple(notes))


def parse_caption(text: str) -> str:
    """``{"caption": str}``, or plain prose (fences stripped) when the model answered without JSON."""
    if not isinstance(text, str) or not text.strip():
        raise MalformedJudgeAnswerError("empty caption")
    try:
        value = extract_json(text)
    except MalformedJudgeAnswerError:
        value = None
    if isinstance(value, Mapping):
        caption = value.get("caption")
        if not isinstance(caption, str) or not caption.strip():
            raise MalformedJudgeAnswerError("caption JSON has no non-empty 'caption' string")
        return " ".join(caption.split())
    body = strip_code_fences(text)
    if body.startswith(("{", "[")):
        raise MalformedJudgeAnswerError(f"caption JSON could not be read: {_excerpt(text)!r}")
    return " ".join(body.split())


def parse_candidates(text: str) -> list[str]:
    """``{"candidates": [str, ...]}`` (or a bare list): the raw phrases, uncleaned.

    Numbers become text; an object item gives its first string (small models wrap phrases in
    objects); nested lists are skipped. An answer cut off inside the ``candidates`` array (a
    token limit) keeps the items that were complete. An answer with no list at all is malformed;
    an empty list is a valid (if unhelpful) answer.
    """
    if not isinstance(text, str) or not text.strip():
        raise MalformedJudgeAnswerError("empty answer: expected JSON")
    value = _whole_json(text)
    if value is None:
        salvaged = _salvage_array(_relax(text))
        if salvaged is not None:
            return salvaged
        value = extract_json(text)
    if isinstance(value, Mapping):
        found = None
        for key in _CANDIDATE_KEYS:
            if key in value:
                found = value[key]
                break
        if found is None:
            raise MalformedJudgeAnswerError("proposal JSON has no 'candidates' field")
        value = found
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list):
        raise MalformedJudgeAnswerError(
            f"'candidates' must be a list of strings, got {type(value).__name__}"
        )
    return [phrase for phrase in (_item_text(item) for item in value) if phrase is not None]


_CANDIDATE_KEYS = ("candidates", "negatives", "negative_prompts")
_OBJECT_HEAD = re.compile(r'\{\s*"[^"\\]*"\s*:\s*("(?:[^"\\]|\\.)*")')
_ARRAY_START = re.compile(r'"(?:candidates|negatives|negative_prompts)"\s*:\s*\[')


def _whole_json(text: str) -> Any:
    for body in (strip_code_fences(text), text.strip()):
        for candidate in (body, _relax(body)):
            try:
                return json.loads(candidate)
            except json.JSONDecodeError:
                continue
    return None


_TRAILING_COMMA = re.compile(r",(\s*[}\]])")


def _relax(text: str) -> str:
    """Trailing commas before ``}`` or ``]`` removed: a common slip of language models. Only
    used once strict parsing failed."""
    return _TRAILING_COMMA.sub(r"\1", text)


def _salvage_array(text: str) -> list[str] | None:
    """The complete items of a ``"candidates": [`` array whose end is missing or broken."""
    match = _ARRAY_START.search(text)
    if match is None:
        return None
    decoder = json.JSONDecoder()
    items: list[str] = []
    pos = match.end()
    while pos < len(text):
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            break
        try:
            item, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            # An object cut off mid-way still names its phrase in its first field.
            head = _OBJECT_HEAD.match(text, pos)
            if head is not None:
                items.append(json.loads(head.group(1)))
            break
        phrase = _item_text(item)
        if phrase is not None:
            items.append(phrase)
    return items if items else None


def _item_text(item: Any) -> str | None:
    if isinstance(item, bool):
        return None
    if isinstance(item, str | int | float):
        return str(item)
    if isinstance(item, Mapping):
        for value in item.values():
            found = _item_text(value) if isinstance(value, str | Mapping) else None
            if found is not None:
                return found
    return None


def _expect_object(value: Any, role: str) -> Mapping[str, Any]:
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], Mapping):
        value = value[0]
    if not isinstance(value, Mapping):
        raise MalformedJudgeAnswerError(f"{role} answer must be a JSON object")
    return value


def _is_exactly_one(value: Any) -> bool:
    if isinstance(value, bool):  # JSON true is not the number 1 the contract asks for
        return False
    if isinstance(value, int | float):
        return value == 1
    if isinstance(value, str):
        return value.strip() in ("1", "1.0")
    return False


def _is_exactly_zero(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return value == 0
    return isinstance(value, str) and value.strip() in ("0", "0.0")


def _to_float(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise MalformedJudgeAnswerError(f"'{name}' must be a number, got a boolean")
    try:
        if isinstance(value, str) and value.strip().endswith("%"):
            number = float(value.strip()[:-1]) / 100.0
        else:
            number = float(value)
    except (TypeError, ValueError):
        raise MalformedJudgeAnswerError(f"'{name}' must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise MalformedJudgeAnswerError(f"'{name}' must be finite, got {value!r}")
    return number


def _excerpt(text: str, limit: int = 120) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
