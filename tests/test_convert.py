"""Vocabulary converters (CLIP vocab.json + merges.txt, sentencepiece spiece.model) and the
fixtures they read. Exact parity with transformers is in test_tokenizer_parity.py."""

from __future__ import annotations

import io
import json
from pathlib import Path

import npc_rt
import pytest
from fixtures.tokenizer_assets import clip_vocab_files, t5_training_corpus, train_t5_spiece
from npc_rt import NpcIOError, Tokenizer, TokenizerError

tokenizers = pytest.importorskip("tokenizers")


def test_clip_fixture_files(tmp_path):
    vocab_path, merges_path = clip_vocab_files(tmp_path)
    vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
    merges = merges_path.read_text(encoding="utf-8").splitlines()
    assert len(vocab) == 49408 and sorted(vocab.values()) == list(range(49408))
    assert vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407
    assert vocab["!"] == 0 and vocab["a</w>"] == 320
    assert merges[0] == "#version: 0.2" and len(merges) == 1 + 48894


def test_t5_spiece_is_byte_identical_across_runs(tmp_path):
    first = train_t5_spiece(tmp_path / "a").read_bytes()
    second = train_t5_spiece(tmp_path / "b").read_bytes()
    assert first == second
    assert len(t5_training_corpus()) > 4000


def test_t5_spiece_settings(tmp_path):
    spm = pytest.importorskip("sentencepiece")
    proc = spm.SentencePieceProcessor(model_file=str(train_t5_spiece(tmp_path)))
    assert proc.get_piece_size() == 1000
    assert (proc.pad_id(), proc.eos_id(), proc.unk_id(), proc.bos_id()) == (0, 1, 2, -1)


def test_converted_json_loads_in_the_tokenizers_package(tmp_path):
    vocab, merges = clip_vocab_files(tmp_path)
    out = npc_rt.convert_clip_vocab(vocab, merges, tmp_path / "clip.json")
    assert out == tmp_path / "clip.json"
    ref = tokenizers.Tokenizer.from_file(str(out))
    ours = Tokenizer.from_file(out, padding="longest", truncation=False, pad_id=0)
    text = "Two Dogs,  playing\tin the SNOW!!"
    assert ours([text]).input_ids[0].tolist() == ref.encode(text).ids

    spiece = train_t5_spiece(tmp_path / "t5")
    t5_out = npc_rt.convert_sentencepiece(spiece, tmp_path / "t5.json")
    ref = tokenizers.Tokenizer.from_file(str(t5_out))
    assert ref.encode("a cat").ids[-1] == 1  # </s> appended
    assert ref.get_vocab_size() == 1100
    assert ref.token_to_id("<extra_id_0>") == 1099 and ref.token_to_id("<extra_id_99>") == 1000


def test_sentencepiece_extra_ids_option(tmp_path):
    spiece = train_t5_spiece(tmp_path)
    out = npc_rt.convert_sentencepiece(spiece, tmp_path / "t.json", extra_ids=0)
    assert Tokenizer.from_preset("t5", out).vocab_size == 1000
    with pytest.raises(npc_rt.InvalidInputError, match="extra_ids"):
        npc_rt.convert_sentencepiece(spiece, tmp_path / "t.json", extra_ids=-1)


def test_clip_converter_errors(tmp_path):
    vocab, merges = clip_vocab_files(tmp_path)
    out = tmp_path / "out.json"
    with pytest.raises(NpcIOError, match="missing.json"):
        npc_rt.convert_clip_vocab(tmp_path / "missing.json", merges, out)
    bad_merges = tmp_path / "bad_merges.txt"
    bad_merges.write_text("#version: 0.2\ni n\nthree parts here\n")
    with pytest.raises(TokenizerError, match="line 3"):
        npc_rt.convert_clip_vocab(vocab, bad_merges, out)
    bad_vocab = tmp_path / "bad_vocab.json"
    bad_vocab.write_text('["not", "a", "mapping"]')
    with pytest.raises(TokenizerError, match="bad_vocab.json"):
        npc_rt.convert_clip_vocab(bad_vocab, merges, out)
    no_specials = tmp_path / "no_specials.json"
    no_specials.write_text(json.dumps({"a": 0, "b": 1}))
    no_merges = tmp_path / "no_merges.txt"
    no_merges.write_text("#version: 0.2\n")
    with pytest.raises(TokenizerError, match="startoftext"):
        npc_rt.convert_clip_vocab(no_specials, no_merges, out)
    with pytest.raises(NpcIOError):
        npc_rt.convert_clip_vocab(vocab, merges, tmp_path / "no_dir" / "out.json")


def test_sentencepiece_converter_errors(tmp_path):
    junk = tmp_path / "junk.model"
    junk.write_bytes(b"\xff\xff\xff\xff not a protobuf")
    with pytest.raises(TokenizerError, match="junk.model"):
        npc_rt.convert_sentencepiece(junk, tmp_path / "out.json")
    with pytest.raises(NpcIOError):
        npc_rt.convert_sentencepiece(tmp_path / "missing.model", tmp_path / "out.json")


def test_bpe_sentencepiece_is_rejected(tmp_path):
    spm = pytest.importorskip("sentencepiece")
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(t5_training_corpus(500)),
        model_writer=model,
        model_type="bpe",
        vocab_size=200,
        num_threads=1,
        minloglevel=2,
    )
    path = Path(tmp_path / "bpe.model")
    path.write_bytes(model.getvalue())
    with pytest.raises(TokenizerError, match="unigram"):
        npc_rt.convert_sentencepiece(path, tmp_path / "out.json")
