"""Converting a pipeline's tokenizers into the core's ``tokenizer.json`` files.

The conversion itself is the Rust core's (``npc_rt.convert_clip_vocab``,
``npc_rt.convert_sentencepiece``); this module finds the source files, reads the special ids the
pipeline pads and terminates with, and records the manifest entry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from npc_rt.errors import EngineError, InvalidInputError

from npc_rt_export.hashing import sha256_file

CLIP_BOS = "<|startoftext|>"
CLIP_EOS = "<|endoftext|>"
T5_DEFAULT_EXTRA_IDS = 100


@dataclass(frozen=True)
class TokenizerEntry:
    """One converted tokenizer as the manifest describes it."""

    name: str
    file: str
    sha256: str
    preset: str
    encoder: str
    max_length: int
    pad_id: int
    bos_id: int | None
    eos_id: int | None

    def to_manifest(self) -> dict:
        return {
            "file": self.file,
            "sha256": self.sha256,
            "preset": self.preset,
            "encoder": self.encoder,
            "max_length": self.max_length,
            "pad_id": self.pad_id,
            "bos_id": self.bos_id,
            "eos_id": self.eos_id,
        }


def _converter(name: str):
    import npc_rt

    func = getattr(npc_rt, name, None)
    if func is None:
        raise EngineError(
            f"npc_rt.{name} is missing from the installed npc_rt; rebuild it "
            "(maturin develop) from a checkout that has the tokenizer converters"
        )
    return func


def _special_token(folder: Path, key: str, default: str) -> str:
    """A special token's text from tokenizer_config.json / special_tokens_map.json."""
    for filename in ("tokenizer_config.json", "special_tokens_map.json"):
        path = folder / filename
        if not path.is_file():
            continue
        value = json.loads(path.read_text(encoding="utf-8")).get(key)
        if isinstance(value, dict):
            value = value.get("content")
        if isinstance(value, str):
            return value
    return default


def _model_max_length(folder: Path, default: int) -> int:
    path = folder / "tokenizer_config.json"
    if path.is_file():
        value = json.loads(path.read_text(encoding="utf-8")).get("model_max_length")
        if isinstance(value, int) and 0 < value < 1_000_000:
            return value
    return default


def _extra_ids(folder: Path) -> int:
    """T5's ``<extra_id_N>`` sentinel count: tokenizer_config.json's ``extra_ids``, else
    transformers' default of 100 (what hub T5 tokenizers use)."""
    path = folder / "tokenizer_config.json"
    if path.is_file():
        value = json.loads(path.read_text(encoding="utf-8")).get("extra_ids")
        if isinstance(value, int) and value >= 0:
            return value
    return T5_DEFAULT_EXTRA_IDS


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise InvalidInputError(
            f"{path.parent}: missing {path.name} ({what}); the exporter needs the source files "
            "that hub checkpoints carry"
        )
    return path


def convert_clip(src_folder: Path, out_dir: Path, name: str, encoder: str) -> TokenizerEntry:
    """CLIP BPE: ``vocab.json`` + ``merges.txt`` -> ``<name>/tokenizer.json``."""
    vocab_json = require_file(src_folder / "vocab.json", "CLIP BPE vocabulary")
    merges_txt = require_file(src_folder / "merges.txt", "CLIP BPE merges")
    out = out_dir / name / "tokenizer.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    _converter("convert_clip_vocab")(str(vocab_json), str(merges_txt), str(out))
    vocab = json.loads(vocab_json.read_text(encoding="utf-8"))

    def token_id(key: str, default: str) -> int:
        token = _special_token(src_folder, key, default)
        if token not in vocab:
            raise InvalidInputError(f"{src_folder}: {key} {token!r} is not in vocab.json")
        return int(vocab[token])

    return TokenizerEntry(
        name=name,
        file=f"{name}/tokenizer.json",
        sha256=sha256_file(out),
        preset="clip-l",
        encoder=encoder,
        max_length=_model_max_length(src_folder, 77),
        pad_id=token_id("pad_token", CLIP_EOS),
        bos_id=token_id("bos_token", CLIP_BOS),
        eos_id=token_id("eos_token", CLIP_EOS),
    )


def convert_t5(
    src_folder: Path, out_dir: Path, name: str, encoder: str, max_length: int
) -> TokenizerEntry:
    """T5 unigram: ``spiece.model`` -> ``<name>/tokenizer.json``."""
    import sentencepiece as spm

    spiece = require_file(src_folder / "spiece.model", "T5 sentencepiece model")
    out = out_dir / name / "tokenizer.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    extra_ids = _extra_ids(src_folder)
    _converter("convert_sentencepiece")(str(spiece), str(out), extra_ids=extra_ids)
    processor = spm.SentencePieceProcessor(model_file=str(spiece))

    def optional(value: int) -> int | None:
        return None if value < 0 else int(value)

    pad = optional(processor.pad_id())
    if pad is None:
        raise InvalidInputError(f"{spiece}: the sentencepiece model defines no pad id")
    return TokenizerEntry(
        name=name,
        file=f"{name}/tokenizer.json",
        sha256=sha256_file(out),
        preset="t5",
        encoder=encoder,
        max_length=max_length,
        pad_id=pad,
        bos_id=optional(processor.bos_id()),
        eos_id=optional(processor.eos_id()),
    )
