"""A tiny random-weight diffusers SD3 pipeline for tests and benches.

SD3's structure (MMDiT with joint attention, patch size 2, CLIP-L + CLIP-G with projections, T5,
16-channel VAE with scaling and shift, FlowMatchEuler with shift 3.0) at tiny widths. The CLIP
widths sum below T5's so the pipeline's zero padding of the CLIP hidden states is exercised.
Weights come from ``torch.manual_seed(seed)``; tokenizers are CLIP's real BPE vocabulary and a
T5 unigram model trained in-process.
"""

from __future__ import annotations

from pathlib import Path

from npc_rt_export.tiny.common import clip_tokenizer, save_with_sources, t5_tokenizer, tiny_vae
from npc_rt_export.tiny.sdxl import _clip
from npc_rt_export.tiny.tokenizer_assets import clip_vocab_files, train_t5_spiece

T5_VOCAB_SIZE = 1000
TINY_SD3_EXPORT = {
    "precision": "fp32",
    "max_batch": 8,
    "min_size": (32, 32),
    "opt_size": (64, 64),
    "max_size": (128, 128),
    "max_sequence_length": 32,
}
"""Export options of the tiny SD3 test engine (T5 padded to 32 tokens instead of 256)."""

SD3_SCHEDULER = {"num_train_timesteps": 1000, "shift": 3.0}
SIZES = {
    "tiny": {"clip": 16, "t5": 48, "heads": 4, "head_dim": 8, "layers": 2, "vae": 8},
    "large": {"clip": 128, "t5": 384, "heads": 8, "head_dim": 48, "layers": 8, "vae": 32},
}


def build_tiny_sd3_pipeline(out_dir: Path, seed: int = 0, size: str = "tiny") -> Path:
    """Build a random-weight ``StableDiffusion3Pipeline`` and ``save_pretrained`` it."""
    import torch
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )
    from transformers import T5Config, T5EncoderModel

    s = SIZES[size]
    out_dir = Path(out_dir)
    assets = out_dir.parent / f"{out_dir.name}-tokenizer-assets"
    vocab_json, merges_txt = clip_vocab_files(assets / "clip")
    spiece = train_t5_spiece(assets / "t5", vocab_size=T5_VOCAB_SIZE)

    torch.manual_seed(seed)
    w = s["clip"]
    text_encoder = _clip(w, True, 2, 1)
    text_encoder_2 = _clip(w, True, 2, 1)
    text_encoder_3 = T5EncoderModel(
        T5Config(
            vocab_size=T5_VOCAB_SIZE,
            d_model=s["t5"],
            d_kv=8,
            d_ff=2 * s["t5"],
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=32,
            relative_attention_max_distance=128,
            feed_forward_proj="gated-gelu",
            tie_word_embeddings=False,
            dropout_rate=0.0,
        )
    )
    inner = s["heads"] * s["head_dim"]
    transformer = SD3Transformer2DModel(
        sample_size=16,
        patch_size=2,
        in_channels=16,
        out_channels=16,
        num_layers=s["layers"],
        attention_head_dim=s["head_dim"],
        num_attention_heads=s["heads"],
        joint_attention_dim=s["t5"],
        caption_projection_dim=inner,
        pooled_projection_dim=2 * w,
        pos_embed_max_size=32,
    )
    vc = s["vae"]
    vae = tiny_vae(
        (vc, vc, 2 * vc, 2 * vc), latent_channels=16, scaling_factor=1.5305, shift_factor=0.0609
    )
    scheduler = FlowMatchEulerDiscreteScheduler(**SD3_SCHEDULER)
    tokenizer = clip_tokenizer(vocab_json, "<|endoftext|>")
    tokenizer_2 = clip_tokenizer(vocab_json, "!")
    tokenizer_3 = t5_tokenizer(spiece)
    pipe = StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        text_encoder_3=text_encoder_3,
        tokenizer_3=tokenizer_3,
    )
    return save_with_sources(
        pipe,
        out_dir,
        (
            (vocab_json, "tokenizer"),
            (merges_txt, "tokenizer"),
            (vocab_json, "tokenizer_2"),
            (merges_txt, "tokenizer_2"),
            (spiece, "tokenizer_3"),
        ),
    )
