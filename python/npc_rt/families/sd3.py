"""What is SD3-specific: CLIP-L + CLIP-G + T5 conditioning joined as diffusers'
StableDiffusion3Pipeline joins it, the flow-match schedule with a static shift, unpacked latents
fed to the MMDiT with the raw timestep, and the VAE's scaling and shift.

Joint text sequence (encode_prompt): the two CLIP penultimate hidden states concatenated on the
feature axis, zero-padded to T5's width, then followed by T5's hidden states on the sequence
axis: ``[77 + L, D]``; pooled: the two projected pooled outputs concatenated. The empty prompt is
encoded (SD3 has no forced zeros). ``Sd3Family`` is what ``pipelines_cfg`` runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from npc_rt.engine import Engine
from npc_rt.families.cfg_config import (
    PROMPT_HIDDEN,
    CfgConfig,
    TextEmbedding,
    check_clip_skip_outputs,
)
from npc_rt.families.flux import vae_input
from npc_rt.generator import GenerationParams
from npc_rt.schedule import FlowMatchConfig, FlowMatchSchedule, euler_step
from npc_rt.schedules_euler import sd3_schedule

FAMILY = "sd3"
SKIP_LAYERS = "skip_layers"  # transformer input: per row, 1 for each block that row skips
CLIP = "text_encoder"
CLIP_2 = "text_encoder_2"
T5 = "text_encoder_3"
TRANSFORMER = "transformer"
VAE_DECODER = "vae_decoder"
COMPONENT_KINDS = {
    CLIP: "clip_text_hidden_projected",
    CLIP_2: "clip_text_hidden_projected",
    T5: "t5_encoder",
    TRANSFORMER: "sd3_transformer",
    VAE_DECODER: "vae_decoder",
}
TOKENIZERS = ("tokenizer", "tokenizer_2", "tokenizer_3")


def joint_sequence(clip_1: np.ndarray, clip_2: np.ndarray, t5: np.ndarray) -> np.ndarray:
    """``[N, 77 + L, D]``: CLIP hidden states side by side, zero-padded to T5's width ``D``,
    then T5's sequence."""
    clip = np.concatenate([clip_1, clip_2], axis=-1)
    pad = t5.shape[-1] - clip.shape[-1]
    clip = np.pad(clip, ((0, 0), (0, 0), (0, pad)))
    return np.concatenate([clip, t5], axis=-2)


@dataclass(frozen=True)
class Sd3Family:
    """SD3's part of the CFG sampling loop (see ``pipelines_cfg.CfgFamily``)."""

    config: CfgConfig
    scheduler: FlowMatchConfig
    skip_layer_blocks: int = 0  # width of the transformer's skip_layers input (0: none)

    family = FAMILY
    backbone = TRANSFORMER
    vae_decoder = VAE_DECODER
    scoring_component = T5
    scoring_tokenizer = "tokenizer_3"
    scoring_output = "last_hidden_state"

    @classmethod
    def from_engine(cls, engine: Engine) -> Sd3Family:
        config = CfgConfig.from_engine(engine, FAMILY, COMPONENT_KINDS, TOKENIZERS)
        check_clip_skip_outputs(engine, (CLIP, CLIP_2))
        skip = next(
            (t for t in engine.component(TRANSFORMER).inputs if t.name == SKIP_LAYERS), None
        )
        blocks = int(skip.shape[1]) if skip is not None else 0
        return cls(config, FlowMatchConfig.from_dict(engine.scheduler_config), blocks)

    def encode(self, texts: Sequence[str], ids: Callable, run: Callable) -> list[TextEmbedding]:
        first = run(CLIP, {"input_ids": ids("tokenizer", texts)})
        second = run(CLIP_2, {"input_ids": ids("tokenizer_2", texts)})
        t5_ids = ids("tokenizer_3", texts)
        t5 = run(T5, {"input_ids": t5_ids, "attention_mask": np.ones_like(t5_ids)})
        sequence = joint_sequence(
            first["hidden_states"], second["hidden_states"], t5["last_hidden_state"]
        )
        pooled = np.concatenate([first["text_embeds"], second["text_embeds"]], axis=-1)
        prompt = None
        if PROMPT_HIDDEN in first:  # exported with clip_skip (prompts only, as diffusers)
            prompt = joint_sequence(
                first[PROMPT_HIDDEN], second[PROMPT_HIDDEN], t5["last_hidden_state"]
            )
        return [
            TextEmbedding(sequence[i], pooled[i], None if prompt is None else prompt[i])
            for i in range(len(texts))
        ]

    def empty_embedding(self, encode_empty: Callable[[], TextEmbedding]) -> TextEmbedding:
        return encode_empty()

    def schedule(self, steps: int, height: int, width: int) -> FlowMatchSchedule:
        unit = self.config.resolution_multiple
        return sd3_schedule(self.scheduler, steps, (height // unit) * (width // unit))

    def initial_latents(self, noise: np.ndarray, schedule: FlowMatchSchedule) -> np.ndarray:
        return noise  # SD3's prepare_latents does not scale the noise

    def text_rows(
        self,
        embeddings: Sequence[TextEmbedding],
        params: GenerationParams,
        uncond_rows: int,
        skip_rows: int = 0,
    ) -> dict[str, np.ndarray]:
        rows = {
            "encoder_hidden_states": np.stack([e.sequence for e in embeddings]),
            "pooled_projections": np.stack([e.pooled for e in embeddings]),
        }
        if self.skip_layer_blocks:
            mask = np.zeros((len(embeddings), self.skip_layer_blocks), dtype=np.float32)
            if skip_rows:  # the skip-layer guidance pass: the last rows skip the chosen blocks
                layers = list(params.skip_layer_guidance.layers)  # type: ignore[union-attr]
                mask[len(embeddings) - skip_rows :, layers] = 1
            rows[SKIP_LAYERS] = mask
        return rows

    latent_input = "hidden_states"
    prediction = "flow"

    def model_input_divisor(self, schedule: FlowMatchSchedule, step: int) -> np.float32:
        return np.float32(1)  # the transformer reads the latents as they are

    def step_inputs(
        self, schedule: FlowMatchSchedule, step: int, rows: int
    ) -> dict[str, np.ndarray]:
        return {"timestep": np.full((rows,), schedule.timesteps[step], dtype=np.float32)}

    def step(
        self, latents: np.ndarray, pred: np.ndarray, schedule: FlowMatchSchedule, step: int
    ) -> np.ndarray:
        return euler_step(latents, pred, schedule.step_delta(step))

    def vae_input(self, latents: np.ndarray) -> np.ndarray:
        return vae_input(latents, self.config.vae_scaling_factor, self.config.vae_shift_factor)


__all__ = ["SKIP_LAYERS", "FAMILY", "COMPONENT_KINDS", "Sd3Family", "joint_sequence"]
