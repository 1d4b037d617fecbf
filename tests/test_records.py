"""Run records: atomic writes, JSON conversion, PNG text chunks, contact sheets."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import pytest
from npc_rt import records
from npc_rt.errors import InvalidInputError, NpcIOError
from npc_rt.records import (
    SheetTile,
    atomic_write_json,
    contact_sheet,
    png_bytes,
    read_json,
    read_png_text,
    to_jsonable,
    write_png,
)
from PIL import Image


@dataclass(frozen=True)
class _Point:
    x: float
    tags: tuple[str, ...]


def test_to_jsonable_handles_dataclasses_numpy_and_non_finite():
    value = {
        "p": _Point(1.5, ("a", "b")),
        "arr": np.arange(3, dtype=np.int32),
        "scalar": np.float32(0.5),
        "nan": math.nan,
        "inf": np.float64(np.inf),
        1: {"nested": (1, 2)},
    }
    assert to_jsonable(value) == {
        "p": {"x": 1.5, "tags": ["a", "b"]},
        "arr": [0, 1, 2],
        "scalar": 0.5,
        "nan": None,
        "inf": None,
        "1": {"nested": [1, 2]},
    }


def test_atomic_json_round_trip_leaves_no_temporaries(tmp_path):
    path = tmp_path / "sub" / "run.json"
    atomic_write_json(path, {"a": 1})
    atomic_write_json(path, {"a": 2, "text": "é"})
    assert read_json(path) == {"a": 2, "text": "é"}
    assert os.listdir(path.parent) == ["run.json"]


def test_failed_replace_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "run.json"
    atomic_write_json(path, {"version": 1})

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(records.os, "replace", broken_replace)
    with pytest.raises(NpcIOError, match="No space left"):
        atomic_write_json(path, {"version": 2})
    monkeypatch.undo()
    assert read_json(path) == {"version": 1}
    assert os.listdir(tmp_path) == ["run.json"]  # the temporary was removed


def test_read_json_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(NpcIOError, match="bad.json"):
        read_json(bad)
    with pytest.raises(NpcIOError, match="missing.json"):
        read_json(tmp_path / "missing.json")


def test_png_text_chunks_round_trip_and_pixels_are_exact(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    text = {"prompt": "a cat, naïve ☃", "seed": "42", "params": '{"steps": 4}'}
    path = write_png(tmp_path / "img.png", pixels, text)
    assert read_png_text(path) == text
    with Image.open(path) as img:
        np.testing.assert_array_equal(np.asarray(img), pixels)


def test_png_refuses_bad_images_and_keys():
    with pytest.raises(InvalidInputError, match="uint8"):
        png_bytes(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(InvalidInputError, match="uint8"):
        png_bytes(np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(InvalidInputError, match="1-79"):
        png_bytes(np.zeros((4, 4, 3), np.uint8), {"": "x"})


def test_contact_sheet_layout_and_text():
    rng = np.random.default_rng(1)
    tiles = [
        SheetTile(rng.integers(0, 256, (16, 24, 3), dtype=np.uint8), (f"#{i} lamp", "rejected"))
        for i in range(5)
    ]
    sheet = contact_sheet(tiles, tile_size=64, columns=3)
    assert sheet.dtype == np.uint8 and sheet.ndim == 3
    rows, cols = 2, 3
    assert sheet.shape[1] == cols * (64 + 16)
    assert sheet.shape[0] == rows * (64 + 16 + 2 * 12)
    # the first tile is drawn at its cell (enlarged to 64 wide), the unused cell stays white
    assert sheet[8:40, 8:72].std() > 0
    assert (sheet[sheet.shape[0] // 2 + 10 :, -70:] == 255).all()
    # text is drawn under each tile (dark pixels in the caption band)
    band = sheet[8 + 64 : 8 + 64 + 24, 8 : 8 + 64]
    assert (band < 128).any()
    with pytest.raises(InvalidInputError):
        contact_sheet([])
