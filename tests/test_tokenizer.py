"""npc_rt.Tokenizer: API, options, layout and errors (parity lives in test_tokenizer_parity.py)."""

from __future__ import annotations

import dataclasses
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import npc_rt
import numpy as np
import pytest
from fixtures.tokenizer_assets import clip_vocab_files, train_t5_spiece
from npc_rt import (
    InvalidInputError,
    NpcError,
    NpcIOError,
    TokenBatch,
    Tokenizer,
    TokenizerError,
)
from npc_rt._npc_rt import NativeTokenizer

BOS, EOS = 49406, 49407


@pytest.fixture(scope="module")
def clip_json(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clip")
    vocab, merges = clip_vocab_files(folder)
    return npc_rt.convert_clip_vocab(vocab, merges, folder / "tokenizer.json")


@pytest.fixture(scope="module")
def t5_json(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("t5")
    return npc_rt.convert_sentencepiece(train_t5_spiece(folder), folder / "tokenizer.json")


def test_preset_names_match_the_core():
    assert npc_rt.PRESETS == tuple(NativeTokenizer.preset_names())


@pytest.mark.parametrize(
    ("preset", "length", "pad"),
    [("clip-l", 77, EOS), ("openclip-bigg", 77, 0), ("t5", 512, 0), ("t5-256", 256, 0)],
)
def test_preset_properties(preset, length, pad, clip_json, t5_json):
    path = clip_json if preset.startswith(("clip", "openclip")) else t5_json
    tok = Tokenizer.from_preset(preset, path)
    assert (tok.preset, tok.max_length, tok.pad_id) == (preset, length, pad)
    assert (tok.padding, tok.truncation, tok.add_special_tokens) == ("max_length", True, True)
    assert tok.n_special_tokens == (2 if path == clip_json else 1)
    batch = tok(["a photo of a cat", ""])
    assert batch.shape == (2, length)
    assert preset in repr(tok)


def test_batch_layout_and_contiguity(clip_json):
    tok = Tokenizer.from_preset("clip-l", clip_json)
    batch = tok.encode_batch(["a photo of a cat", "", "cat " * 100])
    assert isinstance(batch, TokenBatch)
    for arr in (batch.input_ids, batch.attention_mask):
        assert arr.dtype == np.int64 and arr.flags.c_contiguous and arr.shape == (3, 77)
        assert arr.flags.owndata or arr.base is not None  # a numpy view of the Rust buffer
    np.testing.assert_array_equal(batch.input_ids[0, :7], [BOS, 320, 1125, 539, 320, 2368, EOS])
    np.testing.assert_array_equal(batch.input_ids[0, 7:], EOS)  # CLIP-L pads with <|endoftext|>
    np.testing.assert_array_equal(batch.input_ids[1, :2], [BOS, EOS])
    np.testing.assert_array_equal(batch.lengths, [7, 2, 77])
    assert batch.input_ids[2, 76] == EOS and batch.input_ids[2, 75] == 2368


def test_preset_with_shorter_rows_keeps_its_rules(clip_json):
    tok = Tokenizer.from_preset("openclip-bigg", clip_json, max_length=6)
    assert (tok.max_length, tok.pad_id, tok.preset) == (6, 0, "openclip-bigg")
    # "!" stays a special token (id 0) as in diffusers' SDXL tokenizer_2, and EOS stays last.
    np.testing.assert_array_equal(tok(["a!"]).input_ids, [[BOS, 320, 0, EOS, 0, 0]])
    np.testing.assert_array_equal(tok(["a b c d e f"]).input_ids[0, -1], EOS)
    with pytest.raises(InvalidInputError, match="max_length"):
        Tokenizer.from_preset("clip-l", clip_json, max_length=-1)


def test_token_batch_is_frozen(clip_json):
    batch = Tokenizer.from_preset("clip-l", clip_json)(["x"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        batch.input_ids = batch.attention_mask  # type: ignore[misc]


def test_per_call_overrides(clip_json):
    tok = Tokenizer.from_preset("clip-l", clip_json)
    plain = tok(["a cat", "a photo of a cat"], add_special_tokens=False, padding="longest")
    assert plain.shape == (2, 5)
    np.testing.assert_array_equal(
        plain.input_ids, [[320, 2368, EOS, EOS, EOS], [320, 1125, 539, 320, 2368]]
    )
    np.testing.assert_array_equal(plain.attention_mask, [[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]])
    assert tok(["a cat"]).shape == (1, 77)  # the overrides did not stick


def test_from_file_defaults_and_options(clip_json, t5_json):
    t5 = Tokenizer.from_file(t5_json, max_length=16)
    assert (t5.pad_id, t5.preset, t5.max_length) == (0, None, 16)  # <pad> found in the vocab
    clip = Tokenizer.from_file(clip_json, max_length=10, pad_id=7, padding="longest")
    assert clip(["a cat"]).input_ids.tolist() == [[BOS, 320, 2368, EOS]]
    widened = Tokenizer.from_file(clip_json, max_length=10, pad_id=7, truncation=False)
    assert widened(["cat " * 20, "a"]).shape == (2, 22)
    longest = Tokenizer.from_file(clip_json, padding="longest", truncation=False)
    assert longest.max_length is None and longest(["a a a"]).shape == (1, 5)


def test_empty_batch(clip_json):
    batch = Tokenizer.from_preset("clip-l", clip_json)([])
    assert batch.shape == (0, 77) and batch.input_ids.dtype == np.int64


def test_concurrent_calls_agree(clip_json):
    tok = Tokenizer.from_preset("clip-l", clip_json)
    texts = [f"{i} photos of {'a red cat ' * (i % 9)}" for i in range(400)]
    expected = tok(texts).input_ids
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: tok(texts).input_ids, range(8)))
    for got in results:
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"padding": "middle"}, "padding"),
        ({"max_length": 0}, "max_length"),
        ({"max_length": 2}, "no room"),
        ({"max_length": -3}, "max_length"),
        ({"pad_id": 10**6}, "pad_id"),
        ({"pad_id": -1}, "pad_id"),
        ({"max_length": None}, "max_length is required"),
    ],
)
def test_bad_options(kwargs, match, clip_json):
    options = {"max_length": 77, **kwargs}
    with pytest.raises(InvalidInputError, match=match):
        Tokenizer.from_file(clip_json, **options)


def test_bad_call_arguments(clip_json):
    tok = Tokenizer.from_preset("clip-l", clip_json)
    with pytest.raises(InvalidInputError, match="single string"):
        tok("a photo of a cat")
    with pytest.raises(InvalidInputError, match=r"texts\[1\]"):
        tok(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="padding"):
        tok(["ok"], padding="sideways")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"texts\[2\].*surrogates"):
        tok(["ok", "fine", "lone \ud800 surrogate"])


def test_load_errors(clip_json, t5_json, tmp_path):
    with pytest.raises(InvalidInputError, match="unknown tokenizer preset"):
        Tokenizer.from_preset("clip-h", clip_json)
    with pytest.raises(NpcIOError, match="no tokenizer file"):
        Tokenizer.from_preset("clip-l", tmp_path / "missing.json")
    with pytest.raises(TokenizerError, match="</s>"):
        Tokenizer.from_preset("t5", clip_json)
    with pytest.raises(TokenizerError, match="startoftext"):
        Tokenizer.from_preset("clip-l", t5_json)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"model": {"type": "nothing"}}))
    with pytest.raises(TokenizerError, match="broken.json"):
        Tokenizer.from_file(broken, max_length=8)
    assert issubclass(TokenizerError, NpcError)
