"""A tiny random-weight diffusers FLUX pipeline for tests, and its exported engine directory.

The pipeline keeps FLUX's real structure (double- and single-stream transformer blocks, guidance
embedding, 16-channel VAE latents with 8x downsampling, CLIP pooled + T5 sequence conditioning,
FLUX-dev's dynamic-shift scheduler) with tiny widths, so building, exporting and sampling it takes
seconds on two CPU cores. Weights come from ``torch.manual_seed(seed)``: the same seed gives the
same files. Tokenizers are real in kind: CLIP's actual BPE vocabulary and a T5-style unigram model
trained in-process (``npc_rt_export.tiny.tokenizer_assets``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from npc_rt_export.tiny.common import clip_tokenizer, save_with_sources, t5_tokenizer, tiny_vae
from npc_rt_export.tiny.tokenizer_assets import clip_vocab_files, train_t5_spiece

T5_VOCAB_SIZE = 1000
"""Vocabulary of the in-test trained T5 unigram model, and so of the tiny T5 encoder."""

TINY_MAX_SEQUENCE_LENGTH = 32
"""T5 padded length the tiny engine is exported for (FLUX-dev uses 512); keeps tests fast."""

TINY_FLUX_EXPORT = {
    "precision": "fp32",
    "max_batch": 16,
    "min_size": (32, 32),
    "opt_size": (64, 64),
    "max_size": (256, 256),
    "max_sequence_length": TINY_MAX_SEQUENCE_LENGTH,
}
"""Export options of ``tiny_flux_engine_dir`` (keyword arguments of ``ExportOptions``)."""

FLUX_DEV_SCHEDULER = {
    "num_train_timesteps": 1000,
    "shift": 3.0,
    "use_dynamic_shifting": True,
    "base_shift": 0.5,
    "max_shift": 1.15,
    "base_image_seq_len": 256,
    "max_image_seq_len": 4096,
}
"""FLUX.1-dev's FlowMatchEulerDiscreteScheduler settings."""


@dataclass(frozen=True)
class FluxSizes:
    """The widths and depths of a random-weight FLUX pipeline (everything else is FLUX's)."""

    clip_width: int = 32  # CLIP hidden size, and so the pooled projection's
    clip_ff: int = 64
    clip_layers: int = 2
    t5_width: int = 32
    t5_kv: int = 8
    t5_ff: int = 64
    t5_layers: int = 2
    t5_heads: int = 4
    double_blocks: int = 1
    single_blocks: int = 2
    head_dim: int = 16
    heads: int = 2
    rope_axes: tuple[int, int, int] = (4, 6, 6)
    vae_channels: tuple[int, int, int, int] = (8, 8, 16, 16)
    vae_groups: int = 4
    vae_sample_size: int = 64


TINY_FLUX = FluxSizes()
"""Seconds to build, export and sample on two CPU cores: the tests' model."""

SMALL_DIT_FLUX = FluxSizes(
    clip_width=256,
    clip_ff=1024,
    clip_layers=4,
    t5_width=512,
    t5_kv=64,
    t5_ff=1024,
    t5_layers=4,
    t5_heads=8,
    double_blocks=2,
    single_blocks=4,
    head_dim=64,
    heads=6,
    rope_axes=(16, 24, 24),
    vae_channels=(32, 64, 128, 128),
    vae_groups=32,
    vae_sample_size=256,
)
"""Sized like a real small DiT (about 200 MB) that still fits a 2-core benchmark run."""


def build_tiny_flux_pipeline(out_dir: Path, seed: int = 0, sizes: FluxSizes = TINY_FLUX) -> Path:
    """Build a random-weight ``FluxPipeline`` of ``sizes`` and ``save_pretrained`` it into
    ``out_dir``. Returns ``out_dir``. Deterministic for a given ``seed`` (weights and tokenizer
    files)."""
    import torch
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        FluxPipeline,
        FluxTransformer2DModel,
    )
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        T5Config,
        T5EncoderModel,
    )

    out_dir = Path(out_dir)
    assets = out_dir.parent / f"{out_dir.name}-tokenizer-assets"
    vocab_json, merges_txt = clip_vocab_files(assets / "clip")
    spiece = train_t5_spiece(assets / "t5", vocab_size=T5_VOCAB_SIZE)

    torch.manual_seed(seed)
    # CLIP-L's real special ids (bos 0 / pad 1 / eos 2 in the config: transformers then pools at
    # the highest id, which is <|endoftext|>), at tiny width.
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=sizes.clip_width,
            intermediate_size=sizes.clip_ff,
            num_hidden_layers=sizes.clip_layers,
            num_attention_heads=4,
            max_position_embeddings=77,
            projection_dim=sizes.clip_width,
            hidden_act="quick_gelu",
            bos_token_id=0,
            pad_token_id=1,
            eos_token_id=2,
        )
    )
    # T5 v1.1 (gated GELU, untied head) as FLUX's text_encoder_2, at tiny width.
    text_encoder_2 = T5EncoderModel(
        T5Config(
            vocab_size=T5_VOCAB_SIZE,
            d_model=sizes.t5_width,
            d_kv=sizes.t5_kv,
            d_ff=sizes.t5_ff,
            num_layers=sizes.t5_layers,
            num_heads=sizes.t5_heads,
            relative_attention_num_buckets=32,
            relative_attention_max_distance=128,
            feed_forward_proj="gated-gelu",
            tie_word_embeddings=False,
            dropout_rate=0.0,
        )
    )
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=64,
        num_layers=sizes.double_blocks,
        num_single_layers=sizes.single_blocks,
        attention_head_dim=sizes.head_dim,
        num_attention_heads=sizes.heads,
        joint_attention_dim=sizes.t5_width,
        pooled_projection_dim=sizes.clip_width,
        guidance_embeds=True,
        axes_dims_rope=sizes.rope_axes,
    )
    vae = tiny_vae(
        sizes.vae_channels,
        latent_channels=16,
        scaling_factor=0.3611,
        shift_factor=0.1159,
        norm_groups=sizes.vae_groups,
        sample_size=sizes.vae_sample_size,
    )
    scheduler = FlowMatchEulerDiscreteScheduler(**FLUX_DEV_SCHEDULER)
    tokenizer = clip_tokenizer(vocab_json, "<|endoftext|>")
    tokenizer_2 = t5_tokenizer(spiece)

    pipe = FluxPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        transformer=transformer,
    )
    return save_with_sources(
        pipe,
        out_dir,
        ((vocab_json, "tokenizer"), (merges_txt, "tokenizer"), (spiece, "tokenizer_2")),
    )
