"""A tiny random-weight diffusers SDXL pipeline for tests and benches.

It keeps SDXL's structure (a UNet with cross-attention down/up blocks and the ``text_time``
added conditioning; CLIP-L and OpenCLIP-bigG-style text encoders, the second with a projection;
a 4-channel VAE with quant convs and 8x downsampling; SDXL's Euler scheduler config and
``force_zeros_for_empty_prompt``) at tiny widths. Weights come from ``torch.manual_seed(seed)``.
Tokenizers use CLIP's real BPE vocabulary; the second pads with ``!`` as SDXL's tokenizer_2 does.
"""

from __future__ import annotations

from pathlib import Path

from npc_rt_export.tiny.common import clip_tokenizer, save_with_sources, tiny_vae
from npc_rt_export.tiny.tokenizer_assets import clip_vocab_files

SDXL_SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
    "interpolation_type": "linear",
    "timestep_spacing": "leading",
    "steps_offset": 1,
    "use_karras_sigmas": False,
    "final_sigmas_type": "zero",
}
"""stabilityai/stable-diffusion-xl-base-1.0's EulerDiscreteScheduler settings."""

TINY_SDXL_EXPORT = {
    "precision": "fp32",
    "max_batch": 8,
    "min_size": (32, 32),
    "opt_size": (64, 64),
    "max_size": (128, 128),
}
"""Export options of the tiny SDXL test engine (keyword arguments of ``ExportOptions``)."""

# UNet sizes at the "tiny" and the bench's "larger" scale: (block channels, layers, cross dim)
SIZES = {
    "tiny": {"blocks": (32, 64), "clip": (32, 32), "heads": (2, 4), "layers": (1, 2), "vae": 8},
    "large": {
        "blocks": (160, 320, 640),
        "clip": (256, 384),
        "heads": (5, 10, 20),
        "layers": (1, 2, 4),
        "vae": 32,
    },
}


def _clip(width: int, with_projection: bool, layers: int, pad_token_id: int):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=49408,
        hidden_size=width,
        intermediate_size=2 * width,
        num_hidden_layers=layers,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=width,
        hidden_act="gelu",
        bos_token_id=0,
        pad_token_id=pad_token_id,
        eos_token_id=2,
    )
    return CLIPTextModelWithProjection(config) if with_projection else CLIPTextModel(config)


def build_tiny_sdxl_pipeline(out_dir: Path, seed: int = 0, size: str = "tiny") -> Path:
    """Build a random-weight ``StableDiffusionXLPipeline`` and ``save_pretrained`` it.

    ``size`` is ``"tiny"`` (tests) or ``"large"`` (the bench's larger config). Returns ``out_dir``.
    """
    import torch
    from diffusers import (
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )

    s = SIZES[size]
    out_dir = Path(out_dir)
    assets = out_dir.parent / f"{out_dir.name}-tokenizer-assets"
    vocab_json, merges_txt = clip_vocab_files(assets / "clip")

    torch.manual_seed(seed)
    w1, w2 = s["clip"]
    text_encoder = _clip(w1, False, 2, 1)
    text_encoder_2 = _clip(w2, True, 2, 1)
    time_dim = 8
    n = len(s["blocks"])
    unet = UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        block_out_channels=s["blocks"],
        layers_per_block=2 if size == "large" else 1,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",),
        attention_head_dim=s["heads"],
        transformer_layers_per_block=s["layers"],
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_dim,
        projection_class_embeddings_input_dim=6 * time_dim + w2,
        cross_attention_dim=w1 + w2,
        norm_num_groups=8 if size == "tiny" else 32,
    )
    vc = s["vae"]
    vae = tiny_vae((vc, vc, 2 * vc, 2 * vc), latent_channels=4, scaling_factor=0.13025)
    scheduler = EulerDiscreteScheduler(**SDXL_SCHEDULER)
    tokenizer = clip_tokenizer(vocab_json, "<|endoftext|>")
    tokenizer_2 = clip_tokenizer(vocab_json, "!")
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=scheduler,
        force_zeros_for_empty_prompt=True,
    )
    # hub SDXL repos carry vocab.json + merges.txt in both tokenizer folders
    return save_with_sources(
        pipe,
        out_dir,
        [(f, folder) for folder in ("tokenizer", "tokenizer_2") for f in (vocab_json, merges_txt)],
    )
