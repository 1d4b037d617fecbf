"""Parity of npc_rt.Tokenizer (Rust) with the transformers tokenizers diffusers feeds its encoders.

References, as diffusers 0.42 loads them under transformers 5.24:

- CLIP: ``CLIPTokenizer.from_pretrained(folder with vocab.json + merges.txt)``. transformers 5
  ships no slow (pure-Python) CLIP tokenizer any more: ``CLIPTokenizer`` *is* the tokenizers-backed
  class, and ``from_pretrained`` builds it correctly. Constructing it directly with
  ``CLIPTokenizer(vocab_file=..., merges_file=...)`` silently ignores both files and yields a
  2-token vocabulary (the "wrong ids" reported in the issue); ``test_reference_is_real_clip``
  guards against comparing with such a broken reference by checking well-known CLIP ids.
  For SDXL's second encoder diffusers loads the same files with ``pad_token="!"``.
- T5: ``T5TokenizerFast.from_pretrained(folder with spiece.model)``, converted by transformers from
  the sentencepiece model trained in-process by ``fixtures.tokenizer_assets``.

Every comparison is exact (ids are integers): same shape, same ids, same mask.
"""

from __future__ import annotations

import json
import random
import shutil
import warnings
from pathlib import Path

import npc_rt
import numpy as np
import pytest
from fixtures.tokenizer_assets import clip_vocab_files, train_t5_spiece
from hypothesis import given, settings
from hypothesis import strategies as st
from npc_rt import Tokenizer

transformers = pytest.importorskip("transformers")

GENEVAL = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "geneval"
    / "evaluation_metadata.jsonl"
)


def _geneval_prompts() -> list[str]:
    if not GENEVAL.is_file():
        return []
    return [json.loads(line)["prompt"] for line in GENEVAL.read_text().splitlines() if line.strip()]


_FRAGMENTS = [
    "a photo of a cat",
    "two dogs and a red bicycle",
    "Café au lait, naïve façade, résumé",
    "cafe\u0301 (decomposed accent) and A\u030angstro\u0308m",
    "Ñandú, Øresund, Łódź, İstanbul, straße, ΟΔΥΣΣΕΥΣ",
    "一只猫坐在桌子上",
    "東京の夜景、猫がいる",
    "고양이와 강아지",
    "Привет, мир! Ёлка",
    "مرحبا بالعالم",
    "नमस्ते दुनिया",
    "🐱🐶 emoji 👩\u200d👩\u200d👧 family 🇫🇷 flag 👍🏽 thumbs",
    "✨✨✨ sparkles ✨",
    "12345 3.14159 1,000,000 2024-01-01 ২০২৪ Ⅻ １２３ ½",
    "!!!???... --- *** ### $$$ %%% &&& ((())) [[]] {{}}",
    "don't it's we're they've I'm you'll he'd O'Neil's rock'n'roll",
    "\"quoted\" 'single' «guillemets» „low“ ‘curly’",
    "tab\tseparated\tvalues",
    "new\nline\r\nwindows\rold mac",
    "non\u00a0breaking\u00a0space and em\u2003space and ideographic\u3000space",
    "zero\u200bwidth\u200bspace and soft\u00adhyphen",
    "control\x00chars\x07here\x1b[0m",
    "  leading and trailing spaces   ",
    "MiXeD CaSe ShOuTiNg",
    "<|startoftext|> literal specials <|endoftext|>",
    "</s> <pad> <unk> <extra_id_0> <extra_id_99>",
    "url https://example.com/path?q=1&x=2 and mail a.b@c.de",
    "math: x^2 + y^2 = z^2, ∑ ∫ √ ∞ ≠ ≤",
    "ﬁ ligature ﬂ ＡＢＣ fullwidth ｶﾀｶﾅ halfwidth",
    "a horse, a horse\u2014my kingdom\u2013for a horse\u2026",
]


def prompt_corpus(n_random: int = 600, seed: int = 20240601) -> list[str]:
    """A deterministic corpus of >= 1,000 varied prompts (see the module docstring)."""
    rng = random.Random(seed)
    geneval = _geneval_prompts()
    corpus = ["", " ", "\t\n", "a", "A"]
    corpus += _FRAGMENTS
    corpus += geneval
    # GenEval prompts made messy: case, whitespace, punctuation.
    for prompt in geneval[::3]:
        corpus.append(prompt.upper() + "!!!")
        corpus.append("  " + prompt.replace(" ", rng.choice(["  ", "\t", "\u00a0", " \n "])) + " ")
    # Random mixtures of fragments with odd separators.
    pool = _FRAGMENTS + geneval[:100]
    separators = [" ", ", ", "\t", "\n", "  ", "\u00a0", "", "; ", " - ", "!!"]
    for _ in range(n_random):
        parts = [rng.choice(pool) for _ in range(rng.randrange(1, 5))]
        corpus.append(rng.choice(separators).join(parts))
    # Far over every max length: CLIP 77, T5 256 and 512 tokens.
    long_base = (geneval[0] if geneval else "a photo of a bench") + ", "
    corpus += [long_base * 30, long_base * 200, "🐱" * 600, "word " * 700, "一只猫" * 300]
    corpus += ["A red cat. " * 300, "1 2 3 4 5 " * 200, "!?" * 900, "a" * 5000]
    return corpus


CORPUS = prompt_corpus()


def test_corpus_is_large_and_varied():
    assert len(CORPUS) >= 1000
    assert "" in CORPUS
    assert any(len(p) > 3000 for p in CORPUS)
    assert sum(1 for p in CORPUS if not p.isascii()) >= 100


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clip")
    clip_vocab_files(folder)
    npc_rt.convert_clip_vocab(
        folder / "vocab.json", folder / "merges.txt", folder / "tokenizer.json"
    )
    return folder


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("t5")
    train_t5_spiece(folder)
    npc_rt.convert_sentencepiece(folder / "spiece.model", folder / "tokenizer.json")
    return folder


def _hf_folder(src: Path, names: list[str], tmp_path_factory) -> Path:
    """A folder with only the original vocabulary files, so transformers cannot pick up our json."""
    folder = tmp_path_factory.mktemp("hf")
    for name in names:
        shutil.copy(src / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def hf_clip(clip_dir, tmp_path_factory):
    folder = _hf_folder(clip_dir, ["vocab.json", "merges.txt"], tmp_path_factory)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "clip-l": transformers.CLIPTokenizer.from_pretrained(folder),
            "openclip-bigg": transformers.CLIPTokenizer.from_pretrained(folder, pad_token="!"),
        }


@pytest.fixture(scope="module")
def hf_t5(t5_dir, tmp_path_factory):
    folder = _hf_folder(t5_dir, ["spiece.model"], tmp_path_factory)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return transformers.T5TokenizerFast.from_pretrained(folder)


@pytest.fixture(scope="module")
def ours_clip(clip_dir) -> dict[str, Tokenizer]:
    path = clip_dir / "tokenizer.json"
    return {preset: Tokenizer.from_preset(preset, path) for preset in ("clip-l", "openclip-bigg")}


@pytest.fixture(scope="module")
def ours_t5_256(t5_dir) -> Tokenizer:
    return Tokenizer.from_preset("t5-256", t5_dir / "tokenizer.json")


def _reference(hf, texts, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    out = hf(list(texts), return_tensors="np", **kwargs)
    return out["input_ids"].astype(np.int64), out["attention_mask"].astype(np.int64)


def _assert_same(batch, ref_ids, ref_mask, texts):
    assert batch.input_ids.dtype == np.int64 and batch.attention_mask.dtype == np.int64
    assert batch.input_ids.shape == ref_ids.shape
    bad = np.flatnonzero((batch.input_ids != ref_ids).any(axis=1))
    assert bad.size == 0, f"{bad.size} rows differ, first: {texts[bad[0]]!r}"
    np.testing.assert_array_equal(batch.attention_mask, ref_mask)


def test_reference_is_real_clip(hf_clip):
    ids = hf_clip["clip-l"]("a photo of a cat")["input_ids"]
    # Well-known ids of OpenAI's CLIP vocabulary.
    assert ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert len(hf_clip["clip-l"]) == 49408
    assert hf_clip["clip-l"].pad_token_id == 49407 and hf_clip["openclip-bigg"].pad_token_id == 0


@pytest.mark.parametrize("preset", ["clip-l", "openclip-bigg"])
def test_clip_presets_match_transformers(preset, clip_dir, hf_clip):
    tok = Tokenizer.from_preset(preset, clip_dir / "tokenizer.json")
    batch = tok(CORPUS)
    ref = _reference(hf_clip[preset], CORPUS, padding="max_length", max_length=77, truncation=True)
    _assert_same(batch, *ref, CORPUS)
    # Truncated rows keep <|endoftext|> last, as CLIPTokenizer does.
    full = batch.attention_mask.all(axis=1)
    assert full.sum() >= 5
    assert (batch.input_ids[full, 76] == 49407).all()


@pytest.mark.parametrize(("preset", "length"), [("t5", 512), ("t5-256", 256)])
def test_t5_presets_match_transformers(preset, length, t5_dir, hf_t5):
    tok = Tokenizer.from_preset(preset, t5_dir / "tokenizer.json")
    batch = tok(CORPUS)
    ref = _reference(hf_t5, CORPUS, padding="max_length", max_length=length, truncation=True)
    _assert_same(batch, *ref, CORPUS)
    full = batch.attention_mask.all(axis=1)
    assert full.sum() >= 3
    assert (batch.input_ids[full, length - 1] == 1).all()  # </s> survives truncation


def test_clip_options_match_transformers(clip_dir, hf_clip):
    hf = hf_clip["clip-l"]
    path = clip_dir / "tokenizer.json"
    texts = CORPUS[:300]
    longest = Tokenizer.from_file(path, max_length=77, pad_id=49407, padding="longest")
    _assert_same(
        longest(texts),
        *_reference(hf, texts, padding="longest", max_length=77, truncation=True),
        texts,
    )
    _assert_same(
        longest(texts, add_special_tokens=False),
        *_reference(
            hf, texts, padding="longest", max_length=77, truncation=True, add_special_tokens=False
        ),
        texts,
    )
    untruncated = Tokenizer.from_file(path, pad_id=49407, padding="longest", truncation=False)
    _assert_same(untruncated(texts), *_reference(hf, texts, padding="longest"), texts)


def test_t5_options_match_transformers(t5_dir, hf_t5):
    path = t5_dir / "tokenizer.json"
    texts = CORPUS[:300]
    tok = Tokenizer.from_file(path, max_length=64, padding="longest")
    assert tok.pad_id == 0  # from the <pad> token
    _assert_same(
        tok(texts),
        *_reference(hf_t5, texts, padding="longest", max_length=64, truncation=True),
        texts,
    )
    _assert_same(
        tok(texts, add_special_tokens=False, padding="max_length"),
        *_reference(
            hf_t5,
            texts,
            padding="max_length",
            max_length=64,
            truncation=True,
            add_special_tokens=False,
        ),
        texts,
    )


def test_converted_vocab_sizes_match_transformers(clip_dir, t5_dir, hf_clip, hf_t5):
    assert Tokenizer.from_preset("clip-l", clip_dir / "tokenizer.json").vocab_size == len(
        hf_clip["clip-l"]
    )
    assert Tokenizer.from_preset("t5", t5_dir / "tokenizer.json").vocab_size == len(hf_t5)


# Random text: any Unicode scalar value (surrogates cannot be UTF-8), plus a small alphabet dense
# in the characters the pipelines treat specially (whitespace kinds, apostrophes, digits, CJK).
_ODD = " \t\n\r\u00a0\u3000\u200b!?.,'’sStT1²۳aAéE\u0301Σσİ猫🐱👍🏽<>|/"
RANDOM_TEXTS = st.lists(
    st.one_of(
        st.text(st.characters(exclude_categories=("Cs",)), max_size=120),
        st.text(st.sampled_from(_ODD), max_size=120),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(texts=RANDOM_TEXTS)
def test_clip_matches_transformers_on_random_text(texts, ours_clip, hf_clip):
    for preset, tok in ours_clip.items():
        ref = _reference(
            hf_clip[preset], texts, padding="max_length", max_length=77, truncation=True
        )
        _assert_same(tok(texts), *ref, texts)


@settings(max_examples=150, deadline=None)
@given(texts=RANDOM_TEXTS)
def test_t5_matches_transformers_on_random_text(texts, ours_t5_256, hf_t5):
    tok = ours_t5_256
    ref = _reference(hf_t5, texts, padding="max_length", max_length=256, truncation=True)
    _assert_same(tok(texts), *ref, texts)
