"""What is FLUX-specific: its components, latent packing (2x2 patches), image/text ids, the
distilled guidance input, the VAE's scaling/shift, and the checks of a FLUX engine directory.

The functions follow diffusers' FluxPipeline (prepare_latents, _pack_latents, _unpack_latents,
_prepare_latent_image_ids, the VAE decode preamble and VaeImageProcessor's postprocess) in the same
operation order, so results match it bit for bit where the arithmetic is elementwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npc_rt.engine import Engine
from npc_rt.errors import EngineError, InvalidInputError, ShapeError
from npc_rt.families.common import check_engine_layout, check_image_size

FAMILY = "flux"
CLIP = "text_encoder"
T5 = "text_encoder_2"
TRANSFORMER = "transformer"
VAE_DECODER = "vae_decoder"
COMPONENT_KINDS = {
    CLIP: "clip_text_pooled",
    T5: "t5_encoder",
    TRANSFORMER: "flux_transformer",
    VAE_DECODER: "vae_decoder",
}
CLIP_TOKENIZER = "tokenizer"
T5_TOKENIZER = "tokenizer_2"


@dataclass(frozen=True)
class FluxConfig:
    """The manifest's ``pipeline`` constants a FLUX sampling loop needs."""

    vae_scaling_factor: float
    vae_shift_factor: float
    vae_scale_factor: int
    resolution_multiple: int
    latent_channels: int
    in_channels: int
    guidance_embeds: bool
    max_sequence_length: int
    default_steps: int
    default_guidance_scale: float
    default_height: int
    default_width: int
    max_batch: int
    min_size: tuple[int, int]
    max_size: tuple[int, int]

    @classmethod
    def from_engine(cls, engine: Engine) -> FluxConfig:
        """Read and check a FLUX engine: components of the right kinds, the pipeline constants."""
        check_engine_layout(engine, FAMILY, COMPONENT_KINDS, (CLIP_TOKENIZER, T5_TOKENIZER))
        p = engine.pipeline
        try:
            resolution = p["resolution"]
            config = cls(
                vae_scaling_factor=float(p["vae_scaling_factor"]),
                vae_shift_factor=float(p["vae_shift_factor"]),
                vae_scale_factor=int(p["vae_scale_factor"]),
                resolution_multiple=int(p["resolution_multiple"]),
                latent_channels=int(p["latent_channels"]),
                in_channels=int(p["in_channels"]),
                guidance_embeds=bool(p["guidance_embeds"]),
                max_sequence_length=int(p["max_sequence_length"]),
                default_steps=int(p["default_steps"]),
                default_guidance_scale=float(p["default_guidance_scale"]),
                default_height=int(p["default_height"]),
                default_width=int(p["default_width"]),
                max_batch=int(p["max_batch"]),
                min_size=(int(resolution["min"][0]), int(resolution["min"][1])),
                max_size=(int(resolution["max"][0]), int(resolution["max"][1])),
            )
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise EngineError(
                f"manifest pipeline section is incomplete or malformed: {exc!r}"
            ) from exc
        if config.in_channels != 4 * config.latent_channels:
            raise EngineError(
                f"manifest pipeline: in_channels {config.in_channels} != 4 * latent_channels "
                f"{config.latent_channels} (FLUX packs 2x2 latent patches)"
            )
        has_guidance_input = "guidance" in engine.component(TRANSFORMER).input_names
        if has_guidance_input != config.guidance_embeds:
            raise EngineError(
                "manifest: the transformer's guidance input and pipeline.guidance_embeds disagree"
            )
        return config

    def check_size(self, height: int, width: int) -> None:
        """Raise ``ShapeError`` unless ``height``x``width`` is a multiple of the packing unit and
        within the exported resolution range."""
        check_image_size(height, width, self.resolution_multiple, self.min_size, self.max_size)

    def latent_size(self, height: int, width: int) -> tuple[int, int]:
        return latent_size(height, width, self.vae_scale_factor)


def latent_size(height: int, width: int, vae_scale_factor: int) -> tuple[int, int]:
    """Latent height/width, rounded down to even (FluxPipeline.prepare_latents)."""
    return 2 * (int(height) // (vae_scale_factor * 2)), 2 * (int(width) // (vae_scale_factor * 2))


def noise_shape(height: int, width: int, config: FluxConfig) -> tuple[int, int, int, int]:
    """The shape diffusers draws ``randn`` in for one image: ``(1, latent_channels, h, w)``."""
    h, w = config.latent_size(height, width)
    return (1, config.latent_channels, h, w)


def pack_latents(latents: np.ndarray) -> np.ndarray:
    """``[B, C, h, w]`` -> ``[B, (h/2)(w/2), 4C]``: each 2x2 patch becomes one token."""
    b, c, h, w = latents.shape
    if h % 2 or w % 2:
        raise ShapeError(f"latent height/width must be even to pack 2x2 patches, got {h}x{w}")
    x = latents.reshape(b, c, h // 2, 2, w // 2, 2).transpose(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack_latents(packed: np.ndarray, height: int, width: int) -> np.ndarray:
    """Inverse of ``pack_latents`` for a latent grid of ``height``x``width``."""
    b, tokens, channels = packed.shape
    if tokens != (height // 2) * (width // 2) or channels % 4:
        raise ShapeError(f"packed latents {packed.shape} do not fit a {height}x{width} latent grid")
    x = packed.reshape(b, height // 2, width // 2, channels // 4, 2, 2).transpose(0, 3, 1, 4, 2, 5)
    return x.reshape(b, channels // 4, height, width)


def image_ids(grid_height: int, grid_width: int) -> np.ndarray:
    """``[gh*gw, 3]`` float32 rows ``(0, r, c)`` for the packed token grid (row-major)."""
    ids = np.zeros((grid_height, grid_width, 3), dtype=np.float32)
    ids[..., 1] = np.arange(grid_height, dtype=np.float32)[:, None]
    ids[..., 2] = np.arange(grid_width, dtype=np.float32)[None, :]
    return ids.reshape(grid_height * grid_width, 3)


def text_ids(text_length: int) -> np.ndarray:
    """FLUX's text position ids: all zeros ``[L, 3]``."""
    return np.zeros((text_length, 3), dtype=np.float32)


def guidance_input(scale: float, rows: int) -> np.ndarray:
    """The distilled guidance scale per row (the model multiplies by 1000 inside)."""
    return np.full((rows,), scale, dtype=np.float32)


def vae_input(latents: np.ndarray, scaling_factor: float, shift_factor: float) -> np.ndarray:
    """Undo the VAE latent normalisation before decoding: ``x / scaling + shift``."""
    return (latents / scaling_factor) + shift_factor


def postprocess(image: np.ndarray) -> np.ndarray:
    """Decoder output ``[B, 3, H, W]`` in [-1, 1] -> float32 ``[B, H, W, 3]`` in [0, 1]
    (VaeImageProcessor.postprocess with output_type="np")."""
    if image.ndim != 4 or image.shape[1] != 3:
        raise ShapeError(f"decoder output must be [B, 3, H, W], got {image.shape}")
    return np.clip(image * 0.5 + 0.5, 0, 1).transpose(0, 2, 3, 1).astype(np.float32)


def check_prompt(prompt: str) -> None:
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidInputError(f"prompt must be a non-empty string, got {prompt!r}")


__all__ = [
    "FAMILY",
    "COMPONENT_KINDS",
    "FluxConfig",
    "latent_size",
    "noise_shape",
    "pack_latents",
    "unpack_latents",
    "image_ids",
    "text_ids",
    "guidance_input",
    "vae_input",
    "postprocess",
    "check_prompt",
]
