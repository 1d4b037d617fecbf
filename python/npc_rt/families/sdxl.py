"""What is SDXL-specific: its components, text conditioning (two CLIP encoders, pooled output of
the second, six time ids), the Euler schedule with scaled model inputs, and the VAE's scaling.

Follows diffusers' StableDiffusionXLPipeline (encode_prompt, _get_add_time_ids, prepare_latents,
the denoising loop and the VAE decode preamble). ``SdxlFamily`` is what ``pipelines_cfg`` runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from npc_rt.engine import Engine
from npc_rt.errors import EngineError
from npc_rt.families.cfg_config import (
    PROMPT_HIDDEN,
    CfgConfig,
    TextEmbedding,
    check_clip_skip_outputs,
)
from npc_rt.generator import GenerationParams, SizeConditioning
from npc_rt.schedules_euler import EulerConfig, EulerSchedule, euler_schedule

FAMILY = "sdxl"
CLIP = "text_encoder"
CLIP_2 = "text_encoder_2"
UNET = "unet"
VAE_DECODER = "vae_decoder"
COMPONENT_KINDS = {
    CLIP: "clip_text_hidden",
    CLIP_2: "clip_text_hidden_projected",
    UNET: "sdxl_unet",
    VAE_DECODER: "vae_decoder",
}
TOKENIZERS = {"tokenizer": CLIP, "tokenizer_2": CLIP_2}

RunOutputs = Callable[[str, dict[str, np.ndarray]], dict[str, np.ndarray]]
"""``run(component, inputs) -> outputs`` over any number of rows (the pipeline chunks them)."""
EncodeIds = Callable[[str, Sequence[str]], np.ndarray]
"""``ids(tokenizer_name, texts) -> int64 [N, max_length]`` laid out as diffusers tokenizes."""


def time_ids(
    height: int,
    width: int,
    rows: int,
    conditioning: SizeConditioning | None = None,
    uncond_rows: int = 0,
) -> np.ndarray:
    """``original_size + crops_coords_top_left + target_size`` per row (``_get_add_time_ids``):
    by default ``(H, W, 0, 0, H, W)``; the first ``uncond_rows`` rows get the negative triple."""
    positive, negative = (conditioning or SizeConditioning()).time_ids(height, width)
    return np.concatenate(
        [
            np.repeat(negative[None, :], uncond_rows, axis=0),
            np.repeat(positive[None, :], rows - uncond_rows, axis=0),
        ]
    )


@dataclass(frozen=True)
class SdxlFamily:
    """SDXL's part of the CFG sampling loop (see ``pipelines_cfg.CfgFamily``)."""

    config: CfgConfig
    scheduler: EulerConfig
    force_zeros_for_empty_prompt: bool

    family = FAMILY
    backbone = UNET
    vae_decoder = VAE_DECODER
    scoring_component = CLIP_2
    scoring_tokenizer = "tokenizer_2"
    scoring_output = "hidden_states"
    skip_layer_blocks = 0  # no skip-layer guidance

    @classmethod
    def from_engine(cls, engine: Engine) -> SdxlFamily:
        config = CfgConfig.from_engine(engine, FAMILY, COMPONENT_KINDS, tuple(TOKENIZERS))
        check_clip_skip_outputs(engine, (CLIP, CLIP_2))
        try:
            force_zeros = bool(engine.pipeline["force_zeros_for_empty_prompt"])
        except KeyError as exc:
            raise EngineError("manifest pipeline lacks force_zeros_for_empty_prompt") from exc
        return cls(config, EulerConfig.from_dict(engine.scheduler_config), force_zeros)

    def encode(self, texts: Sequence[str], ids: EncodeIds, run: RunOutputs) -> list[TextEmbedding]:
        """Penultimate hidden states of both encoders, concatenated; encoder 2's text_embeds;
        with clip_skip, also the prompt's hidden states of the skipped-to layer."""
        first = run(CLIP, {"input_ids": ids("tokenizer", texts)})
        second = run(CLIP_2, {"input_ids": ids("tokenizer_2", texts)})
        sequence = np.concatenate([first["hidden_states"], second["hidden_states"]], axis=-1)
        pooled = second["text_embeds"]
        prompt = None
        if PROMPT_HIDDEN in first:  # exported with clip_skip
            prompt = np.concatenate([first[PROMPT_HIDDEN], second[PROMPT_HIDDEN]], axis=-1)
        return [
            TextEmbedding(sequence[i], pooled[i], None if prompt is None else prompt[i])
            for i in range(len(texts))
        ]

    def empty_embedding(self, encode_empty: Callable[[], TextEmbedding]) -> TextEmbedding:
        """The unconditional embedding without a negative: zeros when the pipeline forces them
        for an empty negative prompt (SDXL base does), else the encoded empty prompt."""
        if not self.force_zeros_for_empty_prompt:
            return encode_empty()
        c = self.config
        return TextEmbedding(
            np.zeros((77, c.pipeline_int("cross_attention_dim")), dtype=np.float32),
            np.zeros((c.pipeline_int("projection_dim"),), dtype=np.float32),
        )

    def schedule(self, steps: int, height: int, width: int) -> EulerSchedule:
        return euler_schedule(self.scheduler, steps)

    def initial_latents(self, noise: np.ndarray, schedule: EulerSchedule) -> np.ndarray:
        return noise * schedule.init_noise_sigma

    latent_input = "sample"

    @property
    def prediction(self) -> str:
        return self.scheduler.prediction_type

    def model_input_divisor(self, schedule: EulerSchedule, step: int) -> np.float32:
        """``scale_model_input``: the UNet reads ``latents / sqrt(sigma^2 + 1)``."""
        return schedule.input_scale(step)

    def step_inputs(self, schedule: EulerSchedule, step: int, rows: int) -> dict[str, np.ndarray]:
        return {"timestep": np.full((rows,), schedule.model_timestep(step), dtype=np.float32)}

    def text_rows(
        self,
        embeddings: Sequence[TextEmbedding],
        params: GenerationParams,
        uncond_rows: int,
        skip_rows: int = 0,  # SD3's skip-layer guidance, refused for SDXL before sampling
    ) -> dict[str, np.ndarray]:
        return {
            "encoder_hidden_states": np.stack([e.sequence for e in embeddings]),
            "text_embeds": np.stack([e.pooled for e in embeddings]),
            "time_ids": time_ids(
                params.height,
                params.width,
                len(embeddings),
                params.size_conditioning,
                uncond_rows,
            ),
        }

    def step(
        self, latents: np.ndarray, pred: np.ndarray, schedule: EulerSchedule, step: int
    ) -> np.ndarray:
        return schedule.step(latents, pred, step)

    def vae_input(self, latents: np.ndarray) -> np.ndarray:
        return latents / np.float32(self.config.vae_scaling_factor)


__all__ = ["FAMILY", "COMPONENT_KINDS", "SdxlFamily", "time_ids"]
