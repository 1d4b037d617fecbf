"""Cross-check of the CLIP pipeline against OpenAI's original algorithm, as open_clip ships it.

transformers 5 has no pure-Python CLIP tokenizer left to compare with (see
test_tokenizer_parity.py), so this is the independent reference: open_clip's ``SimpleTokenizer``
(ftfy + HTML unescape + whitespace cleanup + lowercase, the CLIP regex, its own BPE loop) reading
the same ``bpe_simple_vocab_16e6.txt.gz``. Its cleanup differs from transformers' on purpose-built
inputs (ftfy straightens quotes, unfolds ligatures, narrows fullwidth forms and drops control
characters; HTML entities are unescaped; literal special tokens stay text), so the comparison runs
on prompts those steps leave alone: printable ASCII without ``&`` or ``<|``. On those, every id
must agree.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import npc_rt
import numpy as np
import pytest
from fixtures.tokenizer_assets import clip_vocab_files
from npc_rt import Tokenizer
from test_tokenizer_parity import CORPUS

pytest.importorskip("ftfy")
pytest.importorskip("regex")
pytest.importorskip("torch")


def _load_open_clip_tokenizer():
    # open_clip's package __init__ needs torchvision; its tokenizer module alone does not.
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("open-clip-torch is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "tokenizer.py"
    module_spec = importlib.util.spec_from_file_location("_open_clip_tokenizer", path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules["_open_clip_tokenizer"] = module
    module_spec.loader.exec_module(module)
    return module.SimpleTokenizer()


@pytest.fixture(scope="module")
def open_clip_tokenizer():
    return _load_open_clip_tokenizer()


@pytest.fixture(scope="module")
def clip_l(tmp_path_factory) -> Tokenizer:
    folder = tmp_path_factory.mktemp("clip")
    vocab, merges = clip_vocab_files(folder)
    return Tokenizer.from_preset(
        "clip-l", npc_rt.convert_clip_vocab(vocab, merges, folder / "tokenizer.json")
    )


def _plain_prompts() -> list[str]:
    # ftfy also deletes control characters and terminal escapes: printable text only. open_clip
    # 3.x spells out a literal "<|endoftext|>" in a prompt as punctuation, where transformers
    # (and diffusers with it) matches the special token: such prompts are left out too.
    return [
        p
        for p in CORPUS
        if p.isascii()
        and "&" not in p
        and "<|" not in p
        and p.strip()
        and all(c.isprintable() or c in " \t\n\r" for c in p)
    ]


def test_plain_subset_is_large():
    assert len(_plain_prompts()) >= 700


def test_clip_matches_open_clip_simple_tokenizer(clip_l, open_clip_tokenizer):
    prompts = _plain_prompts()
    batch = clip_l(prompts)
    # open_clip pads with 0 and, like transformers, truncates to 77 keeping <|endoftext|> last.
    reference = open_clip_tokenizer(prompts, context_length=77).numpy()
    ours = np.where(batch.attention_mask == 1, batch.input_ids, 0)
    bad = np.flatnonzero((ours != reference).any(axis=1))
    assert bad.size == 0, f"{bad.size} rows differ, first: {prompts[bad[0]]!r}"
