"""What the local verifier checks an image for: from metadata when given, else from the prompt.

From metadata, the spec is taken as it is (``npc_rt.metadata``; its ``prompt`` may be left out);
classes the detector does not know are listed as unsupported.

From the prompt, a GenEval-shaped spec is read off the words (lowercased, split on anything not a
letter or digit):

* objects: every phrase naming one of the detector's classes (class names, their plurals and the
  synonyms in ``vocabulary.SYNONYMS``, longest phrase first: "hot dog" before "dog"). "orange"
  right before another object is a colour, otherwise the fruit.
* count and colour: the words just before an object, back to the previous object or a word that
  ends a noun phrase ("and", "with", relation words...): a number word or digit gives the count
  (an explicit number also forbids more, as GenEval's counting prompts do), "a"/"an" gives 1, a
  colour word gives the colour.
* relations: between two objects, "left of" / "right of" / "above" ("over", "on top of") /
  "below" ("under", "beneath") place the first relative to the second; "larger/bigger than" and
  "smaller than" compare their sizes.
* regions: "in/on/at the <top|bottom|left|right|center|...> [left|right] [side|corner|...]"
  after an object (and not followed by "of") puts that object there.

The core's prompt analysis (``npc_rt.analyze_prompt``, the quantity/object words the salient score
uses) names the prompt's object words; any of them that is no class, colour or known modifier is
listed as unsupported: the detector cannot see it, so the verifier cannot accept on its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from npc_rt.judges.local.vocabulary import COCO_CLASSES, phrase_table
from npc_rt.metadata import (
    COLORS,
    ExcludeSpec,
    ObjectSpec,
    PromptSpec,
    Relation,
    normalize_region,
    parse_prompt_spec,
)

_NUMBERS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}  # fmt: skip
_COLOR_WORDS = {name: name for name in COLORS} | {"grey": "gray", "violet": "purple"}
# Words that end the noun phrase before an object when looking back for its count and colour.
_PHRASE_BREAKS = {"and", "with", "of", "than", "above", "below", "under", "over", "beneath", "by"}
# Words that end a noun phrase to their right (besides _PHRASE_BREAKS).
_FUNCTION_WORDS = {
    "a", "an", "the", "in", "on", "at", "to", "for", "from", "or", "is", "are", "next", "near",
    "beside", "behind", "front", "left", "right", "top", "bottom", "into", "onto", "while", "that",
    "which", "who", "its", "their", "his", "her",
}  # fmt: skip
# Modifiers the core's analysis may report as "object words" (the word after a number).
_MODIFIERS = {
    "big", "large", "small", "tiny", "little", "huge", "giant", "old", "new", "young", "cute",
    "single", "pair", "couple", "few", "several", "many", "some", "other", "same", "different",
}  # fmt: skip

_POSITION_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bleft of\b"), "left of"),
    (re.compile(r"\bright of\b"), "right of"),
    (re.compile(r"\b(?:above|over|on top of|atop)\b"), "above"),
    (re.compile(r"\b(?:below|under|beneath|underneath)\b"), "below"),
)
_SIZE_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b(?:larger|bigger) than\b"), "larger than"),
    (re.compile(r"\bsmaller than\b"), "smaller than"),
)
_REGION = re.compile(
    r"\b(?:in|on|at) the (top|bottom|upper|lower|left|right|center|centre|middle)"
    r"(?: (left|right))?(?: (?:side|corner|half|part|edge))?"
    r"(?: of the (?:image|picture|photo|frame))?\b(?! of)"
)


@dataclass(frozen=True)
class Expectations:
    """The spec to check, where it came from, and what the detector cannot check."""

    spec: PromptSpec
    source: str  # "metadata" or "prompt"
    unsupported: tuple[str, ...] = ()


@dataclass(frozen=True)
class Mention:
    start: int  # token index of the phrase
    end: int  # one past its last token
    name: str  # class name


def expectations_for(
    prompt: str,
    metadata: Mapping[str, Any] | PromptSpec | None = None,
    class_names: Sequence[str] = COCO_CLASSES,
) -> Expectations:
    if metadata is not None:
        if isinstance(metadata, Mapping) and "prompt" not in metadata:
            metadata = {**metadata, "prompt": prompt}  # checklists need not repeat the prompt
        spec = parse_prompt_spec(metadata, source="metadata")
        known = set(class_names)
        named = [entry.name for entry in (*spec.include, *spec.exclude)]
        unsupported = tuple(dict.fromkeys(name for name in named if name not in known))
        return Expectations(spec=spec, source="metadata", unsupported=unsupported)
    spec = spec_from_prompt(prompt, class_names)
    return Expectations(
        spec=spec, source="prompt", unsupported=unsupported_words(prompt, class_names)
    )


def tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def find_mentions(words: Sequence[str], table: Mapping[str, str]) -> list[Mention]:
    """Class phrases in ``words``, longest first at each position, left to right."""
    longest = max((len(phrase.split()) for phrase in table), default=1)
    mentions: list[Mention] = []
    i = 0
    while i < len(words):
        for length in range(min(longest, len(words) - i), 0, -1):
            phrase = " ".join(words[i : i + length])
            if phrase in table:
                mentions.append(Mention(i, i + length, table[phrase]))
                i += length
                break
        else:
            i += 1
    # "orange" directly before another object is its colour, not the fruit.
    return [
        m
        for k, m in enumerate(mentions)
        if not (
            words[m.start] == "orange"
            and m.end - m.start == 1
            and k + 1 < len(mentions)
            and mentions[k + 1].start == m.end
        )
    ]


def spec_from_prompt(prompt: str, class_names: Sequence[str] = COCO_CLASSES) -> PromptSpec:
    words = tokens(prompt)
    mentions = find_mentions(words, phrase_table(tuple(class_names)))
    counts: list[int] = []
    explicit: list[bool] = []
    colors: list[str | None] = []
    for k, mention in enumerate(mentions):
        floor = mentions[k - 1].end if k else 0
        count, is_explicit, color = _count_and_color(words[floor : mention.start])
        counts.append(count)
        explicit.append(is_explicit)
        colors.append(color)

    positions: list[Relation | None] = [None] * len(mentions)
    sizes: list[Relation | None] = [None] * len(mentions)
    regions: list[str | None] = [None] * len(mentions)
    for k, mention in enumerate(mentions):
        following = mentions[k + 1].start if k + 1 < len(mentions) else len(words)
        gap = " ".join(words[mention.end : following])
        if k + 1 < len(mentions):
            positions[k] = _first_relation(gap, _POSITION_PATTERNS, k + 1)
            sizes[k] = _first_relation(gap, _SIZE_PATTERNS, k + 1)
        match = _REGION.search(gap)
        if match:
            regions[k] = normalize_region(" ".join(part for part in match.groups() if part))

    include = tuple(
        ObjectSpec(
            name=m.name,
            count=counts[k],
            color=colors[k],
            position=positions[k],
            region=regions[k],
            size=sizes[k],
        )
        for k, m in enumerate(mentions)
    )
    mentioned = [m.name for m in mentions]
    exclude = tuple(
        ExcludeSpec(name=m.name, count=counts[k] + 1)
        for k, m in enumerate(mentions)
        if explicit[k] and mentioned.count(m.name) == 1
    )
    return PromptSpec(
        prompt=" ".join(prompt.split()),
        include=include,
        exclude=exclude,
        source="prompt",
    )


def unsupported_words(prompt: str, class_names: Sequence[str] = COCO_CLASSES) -> tuple[str, ...]:
    """The core's object phrases for ``prompt`` that name no class the detector has.

    The core reports the word after each number or article, which is often an adjective ("a
    fluffy cat" gives "fluffy"); so each is widened to its noun phrase (the following words up to
    a function word or an -ing verb, three at most), and the phrase counts as supported when any
    of its words belongs to a class phrase found in the prompt. Colours and size words alone are
    skipped.
    """
    from npc_rt.prompt import analyze_prompt

    terms = analyze_prompt(prompt)
    if terms.fallback:  # no "<number> <word>" phrase: the words are not known to be objects
        return ()
    words = tokens(prompt)
    mentions = find_mentions(words, phrase_table(tuple(class_names)))
    covered = {i for m in mentions for i in range(m.start, m.end)}
    out = []
    for word in terms.objects:
        if word not in words:  # the core lists singular and plural forms; keep what was written
            continue
        start = words.index(word)
        run = [start]
        while len(run) < 3 and run[-1] + 1 < len(words) and _continues_phrase(words[run[-1] + 1]):
            run.append(run[-1] + 1)
        if any(i in covered for i in run):
            continue
        nouns = [words[i] for i in run if not _is_modifier(words[i])]
        if nouns:
            out.append(" ".join(nouns))
    return tuple(dict.fromkeys(out))


def _is_modifier(word: str) -> bool:
    return word in _COLOR_WORDS or word in _MODIFIERS or word in _NUMBERS or word.isdigit()


def _continues_phrase(word: str) -> bool:
    """Whether ``word`` can extend a noun phrase to its right (not a function word or -ing verb)."""
    return (
        word.isalpha()
        and word not in _FUNCTION_WORDS
        and word not in _PHRASE_BREAKS
        and not (word.endswith("ing") and len(word) > 4)
    )


def _count_and_color(before: Sequence[str]) -> tuple[int, bool, str | None]:
    """(count, whether it was an explicit number, colour) from the words before an object."""
    count, explicit, color = 1, False, None
    for word in reversed(before[-5:]):
        if word in _PHRASE_BREAKS:
            break
        if word in _COLOR_WORDS and color is None:
            color = _COLOR_WORDS[word]
        elif word in _NUMBERS:
            count, explicit = _NUMBERS[word], True
            break
        elif word.isdigit() and 0 < int(word) <= 20:
            count, explicit = int(word), True
            break
        elif word in ("a", "an"):
            break
    return count, explicit, color


def _first_relation(
    gap: str, patterns: tuple[tuple[re.Pattern[str], str], ...], target: int
) -> Relation | None:
    found = [(m.start(), relation) for pattern, relation in patterns if (m := pattern.search(gap))]
    return Relation(min(found)[1], target) if found else None
