"""GenEval(++) metadata and plain prompt files: parsing, round trips, and clear errors."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from npc_rt.errors import InvalidInputError, NpcIOError
from npc_rt.metadata import (
    ExcludeSpec,
    ObjectSpec,
    PromptSpec,
    Relation,
    load_prompt_specs,
    normalize_region,
    parse_jsonl,
    parse_prompt_spec,
)

GENEVAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "geneval"
GENEVAL_METADATA = (GENEVAL / "evaluation_metadata.jsonl").resolve()

needs_geneval = pytest.mark.skipif(
    not GENEVAL_METADATA.is_file(), reason=f"GenEval metadata not found at {GENEVAL_METADATA}"
)


@needs_geneval
def test_every_geneval_line_parses_and_round_trips() -> None:
    rows = [json.loads(line) for line in GENEVAL_METADATA.read_text().splitlines() if line.strip()]
    specs = load_prompt_specs(GENEVAL_METADATA)
    assert len(specs) == len(rows) == 553
    assert Counter(spec.tag for spec in specs) == Counter(row["tag"] for row in rows)
    for number, (spec, row) in enumerate(zip(specs, rows, strict=True), start=1):
        assert spec.source == f"{GENEVAL_METADATA}:{number}"
        assert spec.to_mapping() == row
        assert parse_prompt_spec(spec.to_mapping()) == parse_prompt_spec(row)


@needs_geneval
def test_geneval_fields_land_where_they_belong() -> None:
    specs = load_prompt_specs(GENEVAL_METADATA)
    position = next(s for s in specs if s.prompt == "a photo of a dog right of a teddy bear")
    assert position.include == (
        ObjectSpec("teddy bear", 1),
        ObjectSpec("dog", 1, position=Relation("right of", 0)),
    )
    counting = next(s for s in specs if s.prompt == "a photo of two clocks")
    assert counting.include == (ObjectSpec("clock", 2),)
    assert counting.exclude == (ExcludeSpec("clock", 3),)
    colors = [obj.color for s in specs for obj in s.include if obj.color]
    assert len(colors) == 294 and set(colors) <= {
        "red",
        "orange",
        "yellow",
        "green",
        "blue",
        "purple",
        "pink",
        "brown",
        "black",
        "white",
    }


def test_geneval_plus_plus_shape_round_trips() -> None:
    row = {
        "tag": "region",
        "prompt": "a small cat at the top left and a big dog",
        "include": [
            {"class": "cat", "count": 1, "color": "grey", "region": "Upper-Left", "size": "small"},
            {"class": "dog", "count": 2, "size": ["larger than", 0]},
        ],
        "exclude": [{"class": "person"}, {"class": "car", "count": 2, "color": "red"}],
    }
    spec = parse_prompt_spec(row)
    assert spec.include[0] == ObjectSpec(
        "cat", 1, color="gray", region="top left", size=Relation("smaller than", None)
    )
    assert spec.include[1].size == Relation("larger than", 0)
    assert spec.exclude == (ExcludeSpec("person", 1), ExcludeSpec("car", 2, "red"))
    assert parse_prompt_spec(spec.to_mapping()) == spec
    assert spec.to_mapping()["include"][0]["region"] == "top left"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("left", "left"),
        ("Top Right", "top right"),
        ("upper left", "top left"),
        ("left-top", "top left"),
        ("lower right", "bottom right"),
        ("middle", "center"),
        ("centre", "center"),
        ("left side", "left"),
        ("top middle", None),
        ("inside", None),
    ],
)
def test_normalize_region(text: str, expected: str | None) -> None:
    assert normalize_region(text) == expected


def test_plain_text_prompts(tmp_path: Path) -> None:
    path = tmp_path / "prompts.txt"
    path.write_text("a photo of a cat\n\n   two   dogs on grass  \n", encoding="utf-8")
    specs = load_prompt_specs(path)
    assert [s.prompt for s in specs] == ["a photo of a cat", "two dogs on grass"]
    assert [s.source for s in specs] == [f"{path}:1", f"{path}:3"]
    assert not any(s.has_expectations for s in specs)


GOOD = {"tag": "t", "prompt": "p", "include": [{"class": "cat", "count": 1}]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"prompt": ""}, "'prompt' must be a non-empty string"),
        ({"prompt": 3}, "'prompt' must be a non-empty string"),
        ({"tag": 1}, "'tag' must be a string"),
        ({"include": {"class": "cat"}}, "'include' must be a list"),
        ({"include": ["cat"]}, "include[0] must be an object"),
        ({"include": [{"count": 1}]}, "include[0].class must be a non-empty string"),
        ({"include": [{"class": "cat", "count": 0}]}, "include[0].count must be a positive"),
        ({"include": [{"class": "cat", "count": "two"}]}, "include[0].count must be a positive"),
        ({"include": [{"class": "cat", "count": True}]}, "include[0].count must be a positive"),
        ({"include": [{"class": "cat", "color": "teal"}]}, "include[0].color must be one of"),
        ({"include": [{"class": "cat", "colour": "red"}]}, "unknown field(s) 'colour'"),
        (
            {"include": [{"class": "cat", "position": ["left of", 0]}]},
            "include[0].position index 0 must name another include entry",
        ),
        (
            {"include": [{"class": "cat"}, {"class": "dog", "position": ["left of", 5]}]},
            "include[1].position index 5",
        ),
        (
            {"include": [{"class": "cat"}, {"class": "dog", "position": ["near", 0]}]},
            "include[1].position relation must be one of",
        ),
        (
            {"include": [{"class": "cat"}, {"class": "dog", "position": "left of"}]},
            "must be [relation, index]",
        ),
        ({"include": [{"class": "cat", "region": "inside"}]}, "include[0].region must be one of"),
        ({"include": [{"class": "cat", "size": "large"}]}, "needs another include entry"),
        ({"include": [{"class": "cat"}, {"class": "dog", "size": "huge"}]}, "include[1].size"),
        ({"exclude": [{"class": "cat", "region": "left"}]}, "exclude[0]: unknown field(s)"),
    ],
)
def test_bad_entries_name_the_line_and_field(change: dict, message: str) -> None:
    row = {**GOOD, **change}
    lines = [json.dumps(GOOD), "", json.dumps(row)]
    with pytest.raises(InvalidInputError) as info:
        parse_jsonl(lines, name="meta.jsonl")
    assert "meta.jsonl:3" in str(info.value)
    assert message in str(info.value)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(NpcIOError, match="not found"):
        load_prompt_specs(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(GOOD) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"bad\.jsonl:2: not valid JSON"):
        load_prompt_specs(bad)
    listed = tmp_path / "list.jsonl"
    listed.write_text("[1, 2]\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"list\.jsonl:1: expected a JSON object"):
        load_prompt_specs(listed)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="no prompts"):
        load_prompt_specs(empty)
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(InvalidInputError, match="not UTF-8"):
        load_prompt_specs(binary)


def test_prompt_spec_passes_through_and_has_expectations() -> None:
    spec = PromptSpec(prompt="a cat", include=(ObjectSpec("cat"),))
    assert parse_prompt_spec(spec) is spec
    assert spec.has_expectations
    assert not PromptSpec(prompt="a cat").has_expectations
