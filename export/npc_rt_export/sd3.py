"""What is SD3-specific in the export: the MMDiT wrapper, contracts, sample inputs, constants.

Modules are fed what diffusers' ``StableDiffusion3Pipeline`` feeds them (diffusers 0.42
``pipeline_stable_diffusion_3.py``): both CLIP encoders give penultimate hidden states and their
projected pooled output (the SDXL wrappers); T5 its last hidden state (with an attention mask
input, all ones for generation as the pipeline passes none); the transformer takes unpacked
latents ``[B, C, h, w]``, the joint text sequence ``[B, 77 + L, joint_attention_dim]``, the
concatenated pooled projections and the raw scheduler timestep (0..1000, not divided); the VAE
decodes ``latents / scaling_factor + shift_factor``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from npc_rt.errors import InvalidInputError
from torch import nn

from npc_rt_export.contracts import ComponentContract, DimRange, TensorSpec
from npc_rt_export.flux import TORCH_DTYPES, T5LastHidden, _other, module_dtype
from npc_rt_export.options import ExportOptions, Size
from npc_rt_export.plan import ExportPlan
from npc_rt_export.profiles import ImageProfile, check_size, latent_dims, resolve_image_profile
from npc_rt_export.sampler_step import with_sampler_step
from npc_rt_export.sdxl import (
    CLIP_LENGTH,
    check_clip_skip,
    clip_contract,
    clip_loader,
    clip_tokenizer_entry,
    require_clip_files,
    resolution_manifest,
    vae_contract,
    vae_loader,
)
from npc_rt_export.source import PipelineSource, require_components
from npc_rt_export.tokenizer_files import TokenizerEntry, convert_t5, require_file

REQUIRED_COMPONENTS = (
    "text_encoder",
    "text_encoder_2",
    "text_encoder_3",
    "transformer",
    "vae",
    "tokenizer",
    "tokenizer_2",
    "tokenizer_3",
    "scheduler",
)
# StableDiffusion3Pipeline.__call__ defaults (diffusers 0.42)
DEFAULT_STEPS = 28
DEFAULT_GUIDANCE_SCALE = 7.0
DEFAULT_MAX_SEQUENCE_LENGTH = 256
T5_LIMIT = 512


class Sd3NoisePrediction(nn.Module):
    """SD3 transformer -> noise prediction, inputs as StableDiffusion3Pipeline passes them, plus
    ``skip_layers`` ``[batch, num_layers]``: 1 where that row skips that block (diffusers'
    ``skip_layers``, used by skip-layer guidance), 0 elsewhere.

    diffusers skips a block for the whole call; here the choice is per row, so the skip-layer
    guidance pass rides in the same batch as the CFG rows. A forward hook on each block replaces
    its output by its input on the skipping rows (``where``: exactly the skipped value), which
    leaves diffusers' own forward untouched."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.compute_dtype = module_dtype(model)
        self._skip: torch.Tensor | None = None
        for index, block in enumerate(model.transformer_blocks):
            block.register_forward_hook(self._skip_hook(index), with_kwargs=True)

    def _skip_hook(self, index: int):
        def hook(module, args, kwargs, output):
            if self._skip is None:
                return output
            encoder_out, hidden_out = output
            skip = (self._skip[:, index] > 0.5).view(-1, 1, 1)
            hidden = torch.where(skip, kwargs["hidden_states"], hidden_out)
            if encoder_out is not None:
                encoder_out = torch.where(skip, kwargs["encoder_hidden_states"], encoder_out)
            return encoder_out, hidden

        return hook

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        pooled_projections: torch.Tensor,
        timestep: torch.Tensor,
        skip_layers: torch.Tensor,
    ) -> torch.Tensor:
        dt = self.compute_dtype
        self._skip = skip_layers
        try:
            return self.model(
                hidden_states=hidden_states.to(dt),
                encoder_hidden_states=encoder_hidden_states.to(dt),
                pooled_projections=pooled_projections.to(dt),
                timestep=timestep,
                return_dict=False,
            )[0].float()
        finally:
            self._skip = None


@dataclass(frozen=True)
class Sd3Constants:
    vae_scaling_factor: float
    vae_shift_factor: float
    vae_scale_factor: int
    latent_channels: int
    patch_size: int
    joint_attention_dim: int
    pooled_projection_dim: int
    clip_hidden_size: int
    clip_2_hidden_size: int
    clip_projection_dim: int
    clip_2_projection_dim: int
    clip_vocab_size: int
    t5_vocab_size: int
    t5_d_model: int
    default_sample_size: int
    num_layers: int

    @property
    def resolution_multiple(self) -> int:
        return self.vae_scale_factor * self.patch_size

    @property
    def default_size(self) -> Size:
        side = self.default_sample_size * self.vae_scale_factor
        return (side, side)


def read_constants(source: PipelineSource) -> Sd3Constants:
    require_components(source, REQUIRED_COMPONENTS)
    vae = source.read_config("vae")
    tr = source.read_config("transformer")
    clip = source.read_config("text_encoder")
    clip2 = source.read_config("text_encoder_2")
    t5 = source.read_config("text_encoder_3")
    try:
        c = Sd3Constants(
            vae_scaling_factor=float(vae["scaling_factor"]),
            vae_shift_factor=float(vae.get("shift_factor") or 0.0),
            vae_scale_factor=2 ** (len(vae["block_out_channels"]) - 1),
            latent_channels=int(vae["latent_channels"]),
            patch_size=int(tr["patch_size"]),
            joint_attention_dim=int(tr["joint_attention_dim"]),
            pooled_projection_dim=int(tr["pooled_projection_dim"]),
            clip_hidden_size=int(clip["hidden_size"]),
            clip_2_hidden_size=int(clip2["hidden_size"]),
            clip_projection_dim=int(clip["projection_dim"]),
            clip_2_projection_dim=int(clip2["projection_dim"]),
            clip_vocab_size=int(clip["vocab_size"]),
            t5_vocab_size=int(t5["vocab_size"]),
            t5_d_model=int(t5["d_model"]),
            default_sample_size=int(tr["sample_size"]),
            num_layers=int(tr["num_layers"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"{source.root}: SD3 config incomplete or malformed: {exc}"
        ) from None
    if c.t5_d_model != c.joint_attention_dim:
        raise InvalidInputError(
            f"{source.root}: T5 d_model {c.t5_d_model} != transformer joint_attention_dim "
            f"{c.joint_attention_dim}"
        )
    if c.clip_hidden_size + c.clip_2_hidden_size > c.joint_attention_dim:
        raise InvalidInputError(
            f"{source.root}: the CLIP widths {c.clip_hidden_size} + {c.clip_2_hidden_size} exceed "
            f"the joint width {c.joint_attention_dim} they are padded to"
        )
    if c.clip_projection_dim + c.clip_2_projection_dim != c.pooled_projection_dim:
        raise InvalidInputError(
            f"{source.root}: pooled_projection_dim {c.pooled_projection_dim} != the CLIP "
            f"projections {c.clip_projection_dim} + {c.clip_2_projection_dim}"
        )
    return c


def contracts(
    c: Sd3Constants, profile: ImageProfile, clip_skip: int | None = None
) -> dict[str, ComponentContract]:
    """The five SD3 component contracts, in export order."""
    vsf = c.vae_scale_factor
    batch_t = DimRange(1, min(2, profile.max_batch), profile.max_batch)
    batch_1 = DimRange(1, 1, profile.max_batch)
    trace_batch = min(2, profile.max_batch)
    check_batch = _other(trace_batch, batch_1, 3, 1)
    max_seq = profile.max_sequence_length
    text = DimRange(1, max_seq, max_seq)
    joint = DimRange(CLIP_LENGTH + 1, CLIP_LENGTH + max_seq, CLIP_LENGTH + max_seq)
    lat_h, lat_w = latent_dims(profile, vsf)
    size = check_size(profile, c.resolution_multiple)
    f32 = "float32"
    clip1 = clip_contract(
        "text_encoder",
        "clip_text_hidden_projected",
        c.clip_hidden_size,
        c.clip_projection_dim,
        batch_1,
        trace_batch,
        check_batch,
        clip_skip,
    )
    clip2 = clip_contract(
        "text_encoder_2",
        "clip_text_hidden_projected",
        c.clip_2_hidden_size,
        c.clip_2_projection_dim,
        batch_1,
        trace_batch,
        check_batch,
        clip_skip,
    )
    t5 = ComponentContract(
        name="text_encoder_3",
        kind="t5_encoder",
        inputs=(
            TensorSpec("input_ids", "int64", ("batch", "text_length")),
            TensorSpec("attention_mask", "int64", ("batch", "text_length")),
        ),
        outputs=(TensorSpec("last_hidden_state", f32, ("batch", "text_length", c.t5_d_model)),),
        dims={"batch": batch_1, "text_length": text},
        trace_sizes={"batch": trace_batch, "text_length": max_seq},
        check_sizes={"batch": check_batch, "text_length": _other(max_seq, text, 7)},
    )
    ch = c.latent_channels
    transformer = ComponentContract(
        name="transformer",
        kind="sd3_transformer",
        inputs=(
            TensorSpec("hidden_states", f32, ("batch", ch, "latent_height", "latent_width")),
            TensorSpec(
                "encoder_hidden_states", f32, ("batch", "joint_length", c.joint_attention_dim)
            ),
            TensorSpec("pooled_projections", f32, ("batch", c.pooled_projection_dim)),
            TensorSpec("timestep", f32, ("batch",)),
            TensorSpec("skip_layers", f32, ("batch", c.num_layers)),
        ),
        outputs=(TensorSpec("noise_pred", f32, ("batch", ch, "latent_height", "latent_width")),),
        dims={
            "batch": batch_t,
            "latent_height": lat_h,
            "latent_width": lat_w,
            "joint_length": joint,
        },
        trace_sizes={
            "batch": trace_batch,
            "latent_height": profile.opt_size[0] // vsf,
            "latent_width": profile.opt_size[1] // vsf,
            "joint_length": CLIP_LENGTH + max_seq,
        },
        check_sizes={
            "batch": _other(trace_batch, batch_t, 3, 1),
            "latent_height": size[0] // vsf,
            "latent_width": size[1] // vsf,
            "joint_length": _other(CLIP_LENGTH + max_seq, joint, CLIP_LENGTH + 7),
        },
    )
    vae = vae_contract(ch, vsf, profile, batch_1, trace_batch, check_batch)
    return {x.name: x for x in (clip1, clip2, t5, transformer, vae)}


def sample_inputs(
    contract: ComponentContract,
    c: Sd3Constants,
    sizes: Mapping[str, int],
    generator: torch.Generator,
) -> tuple[torch.Tensor, ...]:
    b = sizes["batch"]

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator)

    if contract.name in ("text_encoder", "text_encoder_2"):
        return (torch.randint(0, c.clip_vocab_size, (b, CLIP_LENGTH), generator=generator),)
    if contract.name == "text_encoder_3":
        length = sizes["text_length"]
        ids = torch.randint(0, c.t5_vocab_size, (b, length), generator=generator)
        mask = torch.ones(b, length, dtype=torch.int64)
        if length > 1:
            mask[-1, (length + 1) // 2 :] = 0  # one padded row: the check covers the masked path
        return ids, mask
    if contract.name == "transformer":
        h, w = sizes["latent_height"], sizes["latent_width"]
        return (
            randn(b, c.latent_channels, h, w),
            randn(b, sizes["joint_length"], c.joint_attention_dim),
            randn(b, c.pooled_projection_dim),
            torch.rand(b, generator=generator) * 999 + 1,
            # a mix of skipping and full rows, so the check covers both paths
            (torch.rand(b, c.num_layers, generator=generator) > 0.5).float(),
        )
    if contract.name == "vae_decoder":
        return (randn(b, c.latent_channels, sizes["latent_height"], sizes["latent_width"]),)
    raise InvalidInputError(f"no SD3 component named {contract.name!r}")


def loaders(
    source: PipelineSource, precision: str, clip_skip: int | None = None
) -> dict[str, Callable[[], nn.Module]]:
    dtype = TORCH_DTYPES[precision]

    def t5() -> nn.Module:
        from transformers import T5EncoderModel

        return T5LastHidden(
            T5EncoderModel.from_pretrained(source.folder("text_encoder_3"), dtype=dtype)
        )

    def transformer() -> nn.Module:
        from diffusers import SD3Transformer2DModel

        return Sd3NoisePrediction(
            SD3Transformer2DModel.from_pretrained(source.folder("transformer"), torch_dtype=dtype)
        )

    return {
        "text_encoder": clip_loader(
            source.folder("text_encoder"), dtype, projected=True, clip_skip=clip_skip
        ),
        "text_encoder_2": clip_loader(
            source.folder("text_encoder_2"), dtype, projected=True, clip_skip=clip_skip
        ),
        "text_encoder_3": t5,
        "transformer": transformer,
        "vae_decoder": vae_loader(source.folder("vae"), dtype),
    }


SCORING_ENCODER = {
    "component": "text_encoder_3",
    "tokenizer": "tokenizer_3",
    "output": "last_hidden_state",
    "pooling": "masked_mean",
}


def plan(source: PipelineSource, options: ExportOptions) -> ExportPlan:
    """The SD3 export plan for ``source`` under ``options``."""
    c = read_constants(source)
    base = resolve_image_profile("SD3", c.default_size, c.resolution_multiple, options)
    max_seq = options.max_sequence_length or DEFAULT_MAX_SEQUENCE_LENGTH
    if max_seq > T5_LIMIT:
        raise InvalidInputError(f"max_sequence_length {max_seq} is over SD3's limit of {T5_LIMIT}")
    profile = ImageProfile(
        base.min_size, base.opt_size, base.max_size, base.max_batch, max_sequence_length=max_seq
    )

    def write_tokenizers(out_dir: Path) -> list[TokenizerEntry]:
        return [
            clip_tokenizer_entry(source.folder("tokenizer"), out_dir, "tokenizer", "text_encoder"),
            clip_tokenizer_entry(
                source.folder("tokenizer_2"), out_dir, "tokenizer_2", "text_encoder_2"
            ),
            convert_t5(
                source.folder("tokenizer_3"), out_dir, "tokenizer_3", "text_encoder_3", max_seq
            ),
        ]

    require_clip_files(source, "tokenizer", "tokenizer_2")
    check_clip_skip(source, options.clip_skip, "text_encoder", "text_encoder_2")
    require_file(source.folder("tokenizer_3") / "spiece.model", "T5 sentencepiece model")
    scheduler_config = require_file(
        source.folder("scheduler") / "scheduler_config.json", "scheduler config"
    )
    default_h, default_w = c.default_size
    pipeline = {
        "class_name": source.class_name,
        "vae_scaling_factor": c.vae_scaling_factor,
        "vae_shift_factor": c.vae_shift_factor,
        "vae_scale_factor": c.vae_scale_factor,
        "resolution_multiple": c.resolution_multiple,
        "latent_channels": c.latent_channels,
        "patch_size": c.patch_size,
        "joint_attention_dim": c.joint_attention_dim,
        "pooled_projection_dim": c.pooled_projection_dim,
        "num_layers": c.num_layers,
        "max_sequence_length": max_seq,
        "default_steps": DEFAULT_STEPS,
        "default_guidance_scale": DEFAULT_GUIDANCE_SCALE,
        "default_height": default_h,
        "default_width": default_w,
        "max_batch": profile.max_batch,
        "resolution": resolution_manifest(profile),
        "clip_skip": options.clip_skip,
    }
    family_plan = ExportPlan(
        family="sd3",
        contracts=contracts(c, profile, options.clip_skip),
        load=loaders(source, options.precision, options.clip_skip),
        sample_inputs=lambda contract, sizes, gen: sample_inputs(contract, c, sizes, gen),
        write_tokenizers=write_tokenizers,
        scheduler_config=scheduler_config,
        pipeline=pipeline,
        scoring_encoder=dict(SCORING_ENCODER),
    )
    return with_sampler_step(family_plan, "transformer", "hidden_states", "flow")
