"""What is FLUX-specific in the export: component wrappers, contracts, sample inputs, constants.

The wrappers feed each diffusers/transformers module exactly what diffusers' ``FluxPipeline``
feeds it (checked against diffusers 0.42 ``pipeline_flux.py``): CLIP's ``pooler_output``; T5's
last hidden state (with an ``attention_mask`` input: all ones reproduces the pipeline's unmasked
call, the salient score passes the real mask); the transformer with ``timestep = t / 1000``, the
raw guidance scale, 2-D ``img_ids``/``txt_ids``; the VAE's ``decode`` on unscaled latents.
Every float input/output is float32 at the graph boundary; the wrapper casts to the module's dtype
inside (docs/engine-format.md, *Dtypes*).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from npc_rt.errors import InvalidInputError
from torch import nn

from npc_rt_export.contracts import ComponentContract, DimRange, TensorSpec
from npc_rt_export.options import ExportOptions, Size
from npc_rt_export.plan import ExportPlan
from npc_rt_export.profiles import ImageProfile, check_size, resolve_image_profile
from npc_rt_export.sampler_step import with_sampler_step
from npc_rt_export.source import PipelineSource, require_components
from npc_rt_export.tokenizer_files import TokenizerEntry, convert_clip, convert_t5, require_file

TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
PRECISION_OF_DTYPE = {v: k for k, v in TORCH_DTYPES.items()}

REQUIRED_COMPONENTS = (
    "text_encoder",
    "text_encoder_2",
    "transformer",
    "vae",
    "tokenizer",
    "tokenizer_2",
    "scheduler",
)

# FluxPipeline.__call__ defaults (diffusers 0.42) and its default_sample_size.
DEFAULT_STEPS = 28
DEFAULT_GUIDANCE_SCALE = 3.5
DEFAULT_SAMPLE_SIZE = 128
DEFAULT_MAX_SEQUENCE_LENGTH = 512
CLIP_TOKENIZER_LENGTH = 77
IMAGE_ID_AXES = 3


# --------------------------------------------------------------------------- wrappers


def module_dtype(module: nn.Module) -> torch.dtype:
    """The dtype most of the module's weights have (by element count)."""
    counts: dict[torch.dtype, int] = {}
    for p in module.parameters():
        counts[p.dtype] = counts.get(p.dtype, 0) + p.numel()
    if not counts:  # weightless modules (the sampler step) compute in float32
        return torch.float32
    return max(counts, key=counts.__getitem__)


class ClipPooled(nn.Module):
    """CLIP text encoder -> ``pooler_output`` (what FluxPipeline uses from CLIP)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids).pooler_output.float()


class T5LastHidden(nn.Module):
    """T5 encoder -> last hidden state, with an explicit attention mask."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask)[0].float()


class FluxNoisePrediction(nn.Module):
    """FLUX transformer -> noise prediction, inputs as FluxPipeline passes them."""

    def __init__(self, model: nn.Module, guidance_embeds: bool) -> None:
        super().__init__()
        self.model = model
        self.compute_dtype = module_dtype(model)
        self.guidance_embeds = guidance_embeds

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        pooled_projections: torch.Tensor,
        timestep: torch.Tensor,
        img_ids: torch.Tensor,
        txt_ids: torch.Tensor,
        guidance: torch.Tensor | None = None,
    ) -> torch.Tensor:
        dt = self.compute_dtype
        # The pipeline hands ids and timestep over in the latents' dtype and guidance in float32
        # (the model casts it itself), so the same casts happen here.
        return self.model(
            hidden_states=hidden_states.to(dt),
            encoder_hidden_states=encoder_hidden_states.to(dt),
            pooled_projections=pooled_projections.to(dt),
            timestep=timestep.to(dt),
            img_ids=img_ids.to(dt),
            txt_ids=txt_ids.to(dt),
            guidance=guidance if self.guidance_embeds else None,
            return_dict=False,
        )[0].float()


class VaeDecode(nn.Module):
    """AutoencoderKL -> decoded image from unscaled latents (``latents / scaling + shift``)."""

    def __init__(self, vae: nn.Module) -> None:
        super().__init__()
        self.vae = vae
        self.compute_dtype = module_dtype(vae)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latents.to(self.compute_dtype), return_dict=False)[0].float()


# --------------------------------------------------------------------------- constants


@dataclass(frozen=True)
class FluxConstants:
    """Numbers read from the source configs that shape the contracts and the sampling loop."""

    vae_scaling_factor: float
    vae_shift_factor: float
    vae_scale_factor: int
    latent_channels: int
    in_channels: int
    joint_attention_dim: int
    pooled_projection_dim: int
    guidance_embeds: bool
    clip_hidden_size: int
    clip_vocab_size: int
    clip_max_positions: int
    t5_vocab_size: int
    t5_d_model: int

    @property
    def resolution_multiple(self) -> int:
        return 2 * self.vae_scale_factor

    @property
    def default_size(self) -> Size:
        side = DEFAULT_SAMPLE_SIZE * self.vae_scale_factor
        return (side, side)


def read_constants(source: PipelineSource) -> FluxConstants:
    require_components(source, REQUIRED_COMPONENTS)
    vae = source.read_config("vae")
    transformer = source.read_config("transformer")
    clip = source.read_config("text_encoder")
    t5 = source.read_config("text_encoder_2")
    try:
        constants = FluxConstants(
            vae_scaling_factor=float(vae["scaling_factor"]),
            vae_shift_factor=float(vae.get("shift_factor") or 0.0),
            vae_scale_factor=2 ** (len(vae["block_out_channels"]) - 1),
            latent_channels=int(vae["latent_channels"]),
            in_channels=int(transformer["in_channels"]),
            joint_attention_dim=int(transformer["joint_attention_dim"]),
            pooled_projection_dim=int(transformer["pooled_projection_dim"]),
            guidance_embeds=bool(transformer.get("guidance_embeds", False)),
            clip_hidden_size=int(clip["hidden_size"]),
            clip_vocab_size=int(clip["vocab_size"]),
            clip_max_positions=int(clip["max_position_embeddings"]),
            t5_vocab_size=int(t5["vocab_size"]),
            t5_d_model=int(t5["d_model"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"{source.root}: FLUX config incomplete or malformed: {exc}"
        ) from None
    if constants.in_channels != 4 * constants.latent_channels:
        raise InvalidInputError(
            f"{source.root}: transformer in_channels {constants.in_channels} is not 4 x the VAE's "
            f"{constants.latent_channels} latent channels (FLUX packs 2x2 latent patches)"
        )
    if constants.joint_attention_dim != constants.t5_d_model:
        raise InvalidInputError(
            f"{source.root}: transformer joint_attention_dim {constants.joint_attention_dim} != "
            f"T5 d_model {constants.t5_d_model}"
        )
    if constants.pooled_projection_dim != constants.clip_hidden_size:
        raise InvalidInputError(
            f"{source.root}: transformer pooled_projection_dim {constants.pooled_projection_dim} "
            f"!= CLIP hidden_size {constants.clip_hidden_size}"
        )
    return constants


# --------------------------------------------------------------------------- profiles


def resolve_profile(constants: FluxConstants, options: ExportOptions) -> ImageProfile:
    profile = resolve_image_profile(
        "FLUX", constants.default_size, constants.resolution_multiple, options
    )
    max_seq = options.max_sequence_length or DEFAULT_MAX_SEQUENCE_LENGTH
    if max_seq > DEFAULT_MAX_SEQUENCE_LENGTH:
        raise InvalidInputError(
            f"max_sequence_length {max_seq} is over FLUX's limit of {DEFAULT_MAX_SEQUENCE_LENGTH}"
        )
    return replace(profile, max_sequence_length=max_seq)


def _seq(size: Size, patch_px: int) -> int:
    return (size[0] // patch_px) * (size[1] // patch_px)


def _traceable(value: int, rng: DimRange) -> int:
    """``value``, unless it is 1 in a range that allows more: torch.export specializes a dynamic
    dimension traced at size 1 (and then refuses it as dynamic)."""
    return 2 if value == 1 and rng.max > 1 else value


def _other(value: int, rng: DimRange, *preferred: int) -> int:
    """A size in ``rng`` different from ``value`` when the range allows (first preferred fit)."""
    for p in (*preferred, rng.min, rng.max):
        if rng.contains(p) and p != value:
            return p
    return value


def contracts(constants: FluxConstants, profile: ImageProfile) -> dict[str, ComponentContract]:
    """The four FLUX component contracts, in export order."""
    patch_px = constants.resolution_multiple
    vsf = constants.vae_scale_factor
    batch_t = DimRange(1, min(2, profile.max_batch), profile.max_batch)
    batch_1 = DimRange(1, 1, profile.max_batch)
    text = DimRange(1, profile.max_sequence_length, profile.max_sequence_length)
    image_seq = DimRange(
        _seq(profile.min_size, patch_px),
        _seq(profile.opt_size, patch_px),
        _seq(profile.max_size, patch_px),
    )
    latent_h = DimRange(
        *(s[0] // vsf for s in (profile.min_size, profile.opt_size, profile.max_size))
    )
    latent_w = DimRange(
        *(s[1] // vsf for s in (profile.min_size, profile.opt_size, profile.max_size))
    )
    size_for_check = check_size(profile, patch_px)
    trace_batch = min(2, profile.max_batch)
    check_batch = _other(trace_batch, batch_1, 3, 1)
    trace_text = profile.max_sequence_length
    check_text = _other(trace_text, text, 7)
    f32 = "float32"

    clip = ComponentContract(
        name="text_encoder",
        kind="clip_text_pooled",
        inputs=(TensorSpec("input_ids", "int64", ("batch", CLIP_TOKENIZER_LENGTH)),),
        outputs=(TensorSpec("pooled_output", f32, ("batch", constants.clip_hidden_size)),),
        dims={"batch": batch_1},
        trace_sizes={"batch": trace_batch},
        check_sizes={"batch": check_batch},
    )
    t5 = ComponentContract(
        name="text_encoder_2",
        kind="t5_encoder",
        inputs=(
            TensorSpec("input_ids", "int64", ("batch", "text_length")),
            TensorSpec("attention_mask", "int64", ("batch", "text_length")),
        ),
        outputs=(
            TensorSpec("last_hidden_state", f32, ("batch", "text_length", constants.t5_d_model)),
        ),
        dims={"batch": batch_1, "text_length": text},
        trace_sizes={"batch": trace_batch, "text_length": trace_text},
        check_sizes={"batch": check_batch, "text_length": check_text},
    )
    transformer_inputs = [
        TensorSpec("hidden_states", f32, ("batch", "image_seq", constants.in_channels)),
        TensorSpec(
            "encoder_hidden_states", f32, ("batch", "text_length", constants.joint_attention_dim)
        ),
        TensorSpec("pooled_projections", f32, ("batch", constants.pooled_projection_dim)),
        TensorSpec("timestep", f32, ("batch",)),
        TensorSpec("img_ids", f32, ("image_seq", IMAGE_ID_AXES)),
        TensorSpec("txt_ids", f32, ("text_length", IMAGE_ID_AXES)),
    ]
    if constants.guidance_embeds:
        transformer_inputs.append(TensorSpec("guidance", f32, ("batch",)))
    transformer = ComponentContract(
        name="transformer",
        kind="flux_transformer",
        inputs=tuple(transformer_inputs),
        outputs=(TensorSpec("noise_pred", f32, ("batch", "image_seq", constants.in_channels)),),
        dims={"batch": batch_t, "image_seq": image_seq, "text_length": text},
        trace_sizes={
            "batch": trace_batch,
            "image_seq": _traceable(_seq(profile.opt_size, patch_px), image_seq),
            "text_length": trace_text,
        },
        check_sizes={
            "batch": _other(trace_batch, batch_t, 3, 1),
            "image_seq": _seq(size_for_check, patch_px),
            "text_length": check_text,
        },
    )
    vae = ComponentContract(
        name="vae_decoder",
        kind="vae_decoder",
        inputs=(
            TensorSpec(
                "latents",
                f32,
                ("batch", constants.latent_channels, "latent_height", "latent_width"),
            ),
        ),
        outputs=(
            TensorSpec("image", f32, ("batch", 3, f"{vsf}*latent_height", f"{vsf}*latent_width")),
        ),
        dims={"batch": batch_1, "latent_height": latent_h, "latent_width": latent_w},
        trace_sizes={
            "batch": trace_batch,
            "latent_height": profile.opt_size[0] // vsf,
            "latent_width": profile.opt_size[1] // vsf,
        },
        check_sizes={
            "batch": check_batch,
            "latent_height": size_for_check[0] // vsf,
            "latent_width": size_for_check[1] // vsf,
        },
    )
    return {c.name: c for c in (clip, t5, transformer, vae)}


# --------------------------------------------------------------------------- sample inputs


def image_ids(grid_h: int, grid_w: int) -> torch.Tensor:
    """FLUX image position ids for a packed ``grid_h x grid_w`` latent grid: rows (0, r, c)."""
    ids = torch.zeros(grid_h, grid_w, IMAGE_ID_AXES)
    ids[..., 1] = torch.arange(grid_h)[:, None]
    ids[..., 2] = torch.arange(grid_w)[None, :]
    return ids.reshape(grid_h * grid_w, IMAGE_ID_AXES)


def _grid_for(seq: int) -> tuple[int, int]:
    """A near-square grid with exactly ``seq`` cells (ids only need to be a valid grid)."""
    h = int(seq**0.5)
    while seq % h:
        h -= 1
    return h, seq // h


def sample_inputs(
    contract: ComponentContract,
    constants: FluxConstants,
    sizes: Mapping[str, int],
    generator: torch.Generator,
) -> tuple[torch.Tensor, ...]:
    """Random but well-formed inputs for ``contract`` at the given dynamic sizes (float32/int64)."""
    b = sizes["batch"]

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator)

    if contract.name == "text_encoder":
        ids = torch.randint(
            0, constants.clip_vocab_size, (b, CLIP_TOKENIZER_LENGTH), generator=generator
        )
        return (ids,)
    if contract.name == "text_encoder_2":
        length = sizes["text_length"]
        ids = torch.randint(0, constants.t5_vocab_size, (b, length), generator=generator)
        mask = torch.ones(b, length, dtype=torch.int64)
        if length > 1:
            mask[-1, (length + 1) // 2 :] = 0  # one padded row: the check covers the masked path
        return ids, mask
    if contract.name == "transformer":
        seq, length = sizes["image_seq"], sizes["text_length"]
        args = [
            randn(b, seq, constants.in_channels),
            randn(b, length, constants.joint_attention_dim),
            randn(b, constants.pooled_projection_dim),
            torch.rand(b, generator=generator) * 0.999 + 0.001,
            image_ids(*_grid_for(seq)),
            torch.zeros(length, IMAGE_ID_AXES),
        ]
        if constants.guidance_embeds:
            args.append(torch.full((b,), DEFAULT_GUIDANCE_SCALE))
        return tuple(args)
    if contract.name == "vae_decoder":
        return (randn(b, constants.latent_channels, sizes["latent_height"], sizes["latent_width"]),)
    raise InvalidInputError(f"no FLUX component named {contract.name!r}")


# --------------------------------------------------------------------------- loading


def loaders(
    source: PipelineSource, constants: FluxConstants, precision: str
) -> dict[str, Callable[[], nn.Module]]:
    """Per component, a function loading the wrapped torch module in the export precision.

    Loading goes through ``from_pretrained(torch_dtype=...)`` as a diffusers user's pipeline
    would, so modules kept in float32 on load (T5's ``wo``) stay float32 here too.
    """
    dtype = TORCH_DTYPES[precision]

    def clip() -> nn.Module:
        from transformers import CLIPTextModel

        return ClipPooled(CLIPTextModel.from_pretrained(source.folder("text_encoder"), dtype=dtype))

    def t5() -> nn.Module:
        from transformers import T5EncoderModel

        return T5LastHidden(
            T5EncoderModel.from_pretrained(source.folder("text_encoder_2"), dtype=dtype)
        )

    def transformer() -> nn.Module:
        from diffusers import FluxTransformer2DModel

        model = FluxTransformer2DModel.from_pretrained(
            source.folder("transformer"), torch_dtype=dtype
        )
        return FluxNoisePrediction(model, constants.guidance_embeds)

    def vae() -> nn.Module:
        from diffusers import AutoencoderKL

        # ONNX (opset 18) Conv has no bfloat16 type: a bf16 VAE graph is invalid for every
        # runtime, so a bf16 export keeps the (small) VAE decoder in float32.
        vae_dtype = torch.float32 if dtype == torch.bfloat16 else dtype
        return VaeDecode(AutoencoderKL.from_pretrained(source.folder("vae"), torch_dtype=vae_dtype))

    return {
        "text_encoder": clip,
        "text_encoder_2": t5,
        "transformer": transformer,
        "vae_decoder": vae,
    }


def pipeline_manifest(
    source: PipelineSource, constants: FluxConstants, profile: ImageProfile
) -> dict:
    """The manifest's ``pipeline`` section."""
    default_h, default_w = constants.default_size
    return {
        "class_name": source.class_name,
        "vae_scaling_factor": constants.vae_scaling_factor,
        "vae_shift_factor": constants.vae_shift_factor,
        "vae_scale_factor": constants.vae_scale_factor,
        "resolution_multiple": constants.resolution_multiple,
        "latent_channels": constants.latent_channels,
        "in_channels": constants.in_channels,
        "joint_attention_dim": constants.joint_attention_dim,
        "pooled_projection_dim": constants.pooled_projection_dim,
        "guidance_embeds": constants.guidance_embeds,
        "max_sequence_length": profile.max_sequence_length,
        "default_steps": DEFAULT_STEPS,
        "default_guidance_scale": DEFAULT_GUIDANCE_SCALE,
        "default_height": default_h,
        "default_width": default_w,
        "max_batch": profile.max_batch,
        "resolution": {
            "min": list(profile.min_size),
            "opt": list(profile.opt_size),
            "max": list(profile.max_size),
        },
    }


SCORING_ENCODER = {
    "component": "text_encoder_2",
    "tokenizer": "tokenizer_2",
    "output": "last_hidden_state",
    "pooling": "masked_mean",
}


def plan(source: PipelineSource, options: ExportOptions) -> ExportPlan:
    """The FLUX export plan for ``source`` under ``options``."""
    if options.clip_skip is not None:
        raise InvalidInputError(
            "clip_skip does not apply to FLUX: it uses CLIP's pooled output only"
        )
    constants = read_constants(source)
    profile = resolve_profile(constants, options)

    def write_tokenizers(out_dir: Path) -> list[TokenizerEntry]:
        return [
            convert_clip(source.folder("tokenizer"), out_dir, "tokenizer", "text_encoder"),
            convert_t5(
                source.folder("tokenizer_2"),
                out_dir,
                "tokenizer_2",
                "text_encoder_2",
                profile.max_sequence_length,
            ),
        ]

    # Fail on missing tokenizer sources now, not after minutes of model export.
    require_file(source.folder("tokenizer") / "vocab.json", "CLIP BPE vocabulary")
    require_file(source.folder("tokenizer") / "merges.txt", "CLIP BPE merges")
    require_file(source.folder("tokenizer_2") / "spiece.model", "T5 sentencepiece model")
    scheduler_config = require_file(
        source.folder("scheduler") / "scheduler_config.json", "scheduler config"
    )
    family_plan = ExportPlan(
        family="flux",
        contracts=contracts(constants, profile),
        load=loaders(source, constants, options.precision),
        sample_inputs=lambda contract, sizes, gen: sample_inputs(contract, constants, sizes, gen),
        write_tokenizers=write_tokenizers,
        scheduler_config=scheduler_config,
        pipeline=pipeline_manifest(source, constants, profile),
        scoring_encoder=dict(SCORING_ENCODER),
    )
    return with_sampler_step(family_plan, "transformer", "hidden_states", "flow")
