"""Batch tokenization: npc_rt.Tokenizer vs the `tokenizers` package vs transformers, same run.

For each preset (CLIP-L with the real CLIP vocabulary, T5 with the test unigram model) it encodes
the same batch of prompts into padded int64 ``input_ids`` + ``attention_mask`` arrays with:

- ``npc_rt``: ``Tokenizer.from_preset(name, tokenizer.json)(prompts)``;
- ``tokenizers``: the same ``tokenizer.json`` in the Python package, padding and truncation
  enabled, ``encode_batch`` then numpy arrays built from the encodings (what a caller must do);
  ``tokenizers (encode only)`` stops after ``encode_batch``, before any array exists;
- ``transformers``: the tokenizer diffusers uses (``CLIPTokenizer`` / ``T5TokenizerFast``) with
  ``padding="max_length", truncation=True, return_tensors="np"``.

It checks first that all produce identical arrays, then prints median seconds and each peer's
time divided by npc_rt's (above 1: npc_rt faster). Build with ``maturin develop --release``.

    python benches/bench_tokenize.py [--prompts 4096] [--repeats 15]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import npc_rt
import numpy as np
import tokenizers
import transformers
from npc_rt_export.tiny.tokenizer_assets import clip_vocab_files, train_t5_spiece

REPO = Path(__file__).resolve().parents[1]

GENEVAL = REPO.parent / "shared" / "data" / "geneval" / "evaluation_metadata.jsonl"
FALLBACK = ["a photo of a cat", "two red apples on a wooden table", "a dog to the left of a bench"]


def prompts(n: int, seed: int = 7) -> list[str]:
    """``n`` diffusion-style prompts: GenEval's, plus decorated and lengthened variants."""
    base = FALLBACK
    if GENEVAL.is_file():
        base = [json.loads(line)["prompt"] for line in GENEVAL.read_text().splitlines() if line]
    styles = ["", ", highly detailed", ", 4k photo, studio lighting", ", oil painting, Café"]
    rng = random.Random(seed)
    out = []
    for i in range(n):
        text = base[i % len(base)] + rng.choice(styles)
        if rng.random() < 0.2:
            text = " ".join([text] * rng.randrange(2, 6))
        out.append(text)
    return out


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (fills BPE caches for everyone alike)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def tokenizers_arrays(tok: tokenizers.Tokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    encodings = tok.encode_batch(texts)
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    return ids, mask


def bench_preset(name: str, json_path: Path, hf, pad_id: int, texts: list[str], repeats: int):
    ours = npc_rt.Tokenizer.from_preset(name, json_path)
    length = ours.max_length
    peer = tokenizers.Tokenizer.from_file(str(json_path))
    peer.enable_truncation(length)
    peer.enable_padding(pad_id=pad_id, length=length)

    def run_ours():
        return ours(texts)

    def run_peer():
        return tokenizers_arrays(peer, texts)

    def run_peer_encode_only():
        return peer.encode_batch(texts)

    def run_hf():
        return hf(
            texts, padding="max_length", max_length=length, truncation=True, return_tensors="np"
        )

    batch = run_ours()
    peer_ids, peer_mask = run_peer()
    hf_out = run_hf()
    for other_ids, other_mask in (
        (peer_ids, peer_mask),
        (hf_out["input_ids"], hf_out["attention_mask"]),
    ):
        assert np.array_equal(batch.input_ids, other_ids), f"{name}: ids differ"
        assert np.array_equal(batch.attention_mask, other_mask), f"{name}: masks differ"

    t_ours = median_seconds(run_ours, repeats)
    rows = [
        ("npc_rt", t_ours),
        ("tokenizers", median_seconds(run_peer, repeats)),
        ("tokenizers (encode only)", median_seconds(run_peer_encode_only, repeats)),
        ("transformers", median_seconds(run_hf, max(3, repeats // 3))),
    ]
    print(f"\n{name}: {len(texts)} prompts -> [{len(texts)}, {length}] int64")
    print(f"  {'':26} {'median ms':>10} {'prompts/s':>12} {'x npc_rt':>9}")
    for label, seconds in rows:
        print(
            f"  {label:26} {seconds * 1e3:10.2f} {len(texts) / seconds:12,.0f} {seconds / t_ours:9.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    texts = prompts(args.prompts)
    print(
        f"npc_rt {npc_rt.__version__}, tokenizers {tokenizers.__version__}, "
        f"transformers {transformers.__version__}, {os.cpu_count()} CPUs, "
        f"TOKENIZERS_PARALLELISM={os.environ.get('TOKENIZERS_PARALLELISM', '(unset: on)')}, "
        f"RAYON_NUM_THREADS={os.environ.get('RAYON_NUM_THREADS', '(unset)')}"
    )
    work = Path(tempfile.mkdtemp(prefix="bench_tokenize_"))
    try:
        clip_dir, t5_dir = work / "clip", work / "t5"
        vocab, merges = clip_vocab_files(clip_dir)
        npc_rt.convert_clip_vocab(vocab, merges, work / "clip.json")
        npc_rt.convert_sentencepiece(train_t5_spiece(t5_dir), work / "t5.json")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hf_clip = transformers.CLIPTokenizer.from_pretrained(clip_dir)
            hf_t5 = transformers.T5TokenizerFast.from_pretrained(t5_dir)
        bench_preset("clip-l", work / "clip.json", hf_clip, 49407, texts, args.repeats)
        bench_preset("t5", work / "t5.json", hf_t5, 0, texts, args.repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
