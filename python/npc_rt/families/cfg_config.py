"""The manifest constants SDXL and SD3 share (the real-CFG families), and their text embedding."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from npc_rt.engine import Engine
from npc_rt.errors import EngineError
from npc_rt.families.common import check_engine_layout, check_image_size
from npc_rt.pipeline import TextEmbedding


@dataclass(frozen=True)
class CfgConfig:
    """The manifest's ``pipeline`` section for SDXL / SD3, checked."""

    vae_scaling_factor: float
    vae_shift_factor: float
    vae_scale_factor: int
    resolution_multiple: int
    latent_channels: int
    default_steps: int
    default_guidance_scale: float
    default_height: int
    default_width: int
    max_batch: int
    min_size: tuple[int, int]
    opt_size: tuple[int, int]
    max_size: tuple[int, int]
    pipeline: Mapping[str, Any]

    @classmethod
    def from_engine(
        cls,
        engine: Engine,
        family: str,
        kinds: Mapping[str, str],
        tokenizers: tuple[str, ...],
    ) -> CfgConfig:
        check_engine_layout(engine, family, kinds, tokenizers)
        p = engine.pipeline
        try:
            res = p["resolution"]
            return cls(
                vae_scaling_factor=float(p["vae_scaling_factor"]),
                vae_shift_factor=float(p["vae_shift_factor"]),
                vae_scale_factor=int(p["vae_scale_factor"]),
                resolution_multiple=int(p["resolution_multiple"]),
                latent_channels=int(p["latent_channels"]),
                default_steps=int(p["default_steps"]),
                default_guidance_scale=float(p["default_guidance_scale"]),
                default_height=int(p["default_height"]),
                default_width=int(p["default_width"]),
                max_batch=int(p["max_batch"]),
                min_size=(int(res["min"][0]), int(res["min"][1])),
                opt_size=(int(res["opt"][0]), int(res["opt"][1])),
                max_size=(int(res["max"][0]), int(res["max"][1])),
                pipeline=p,
            )
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise EngineError(
                f"manifest pipeline section is incomplete or malformed: {exc!r}"
            ) from exc

    def pipeline_int(self, key: str) -> int:
        try:
            return int(self.pipeline[key])
        except (KeyError, TypeError, ValueError) as exc:
            raise EngineError(f"manifest pipeline lacks an integer {key!r}") from exc

    def check_size(self, height: int, width: int) -> None:
        """``ShapeError`` unless the size is a multiple of the resolution unit and in range."""
        check_image_size(height, width, self.resolution_multiple, self.min_size, self.max_size)

    def noise_shape(self, height: int, width: int) -> tuple[int, int, int, int]:
        """``(1, latent_channels, H / vae_scale_factor, W / vae_scale_factor)``: prepare_latents."""
        f = self.vae_scale_factor
        return (1, self.latent_channels, int(height) // f, int(width) // f)


PROMPT_HIDDEN = "prompt_hidden_states"
"""CLIP output of engines exported with clip_skip: the prompt's layer (negatives keep the
penultimate one, as in diffusers)."""


def check_clip_skip_outputs(engine: Engine, clips: tuple[str, ...]) -> None:
    """``EngineError`` unless the CLIP encoders have the prompt-layer output exactly when the
    manifest records a clip_skip."""
    clip_skip = engine.pipeline.get("clip_skip")
    for name in clips:
        has = PROMPT_HIDDEN in engine.component(name).output_names
        if has != (clip_skip is not None):
            raise EngineError(
                f"engine {engine.root}: pipeline.clip_skip is {clip_skip!r} but {name} "
                f"{'has' if has else 'lacks'} the {PROMPT_HIDDEN} output"
            )


__all__ = ["PROMPT_HIDDEN", "CfgConfig", "TextEmbedding", "check_clip_skip_outputs"]
