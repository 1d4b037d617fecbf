"""What is SDXL-specific in the export: component wrappers, contracts, sample inputs, constants.

The wrappers feed each module what diffusers' ``StableDiffusionXLPipeline`` feeds it (checked
against diffusers 0.42 ``pipeline_stable_diffusion_xl.py``): both CLIP encoders give their
penultimate hidden state (``hidden_states[-2]``; ``[-(clip_skip + 2)]`` when exported with
``clip_skip``, a choice fixed in the graph); the second also its projected pooled output
(``text_embeds``, the pipeline's ``pooled_prompt_embeds``); the UNet takes the scaled latents,
the scheduler's timestep, the concatenated hidden states and the ``text_time`` added
conditioning (pooled embeds + 6 time ids); the VAE decodes ``latents / scaling_factor``.
The CLIP wrappers and the resolution profile are shared with the SD3 export (``sd3.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from npc_rt.errors import InvalidInputError
from torch import nn

from npc_rt_export.contracts import ComponentContract, DimRange, TensorSpec
from npc_rt_export.flux import TORCH_DTYPES, VaeDecode, _other, module_dtype
from npc_rt_export.options import ExportOptions, Size
from npc_rt_export.plan import ExportPlan
from npc_rt_export.profiles import ImageProfile, check_size, latent_dims, resolve_image_profile
from npc_rt_export.sampler_step import with_sampler_step
from npc_rt_export.source import PipelineSource, require_components
from npc_rt_export.tokenizer_files import TokenizerEntry, convert_clip, require_file

REQUIRED_COMPONENTS = (
    "text_encoder",
    "text_encoder_2",
    "unet",
    "vae",
    "tokenizer",
    "tokenizer_2",
    "scheduler",
)
CLIP_LENGTH = 77
TIME_IDS = 6
# StableDiffusionXLPipeline.__call__ defaults (diffusers 0.42)
DEFAULT_STEPS = 50
DEFAULT_GUIDANCE_SCALE = 5.0


# --------------------------------------------------------------------------- wrappers


def hidden_layer(clip_skip: int | None) -> int:
    """The ``hidden_states`` index the pipelines read: ``-2`` (penultimate) without clip_skip,
    ``-(clip_skip + 2)`` with it (diffusers' SDXL and SD3 ``encode_prompt``)."""
    return -2 if clip_skip is None else -(clip_skip + 2)


PROMPT_HIDDEN = "prompt_hidden_states"
"""The extra CLIP output of an engine exported with clip_skip: diffusers applies clip_skip to the
prompt only (negative and empty prompts keep the penultimate layer), so both layers are needed."""


class ClipPenultimate(nn.Module):
    """CLIP text encoder -> penultimate hidden state, plus ``hidden_states[prompt_layer]`` for
    the prompt when that is another layer (clip_skip)."""

    def __init__(self, model: nn.Module, prompt_layer: int = -2) -> None:
        super().__init__()
        self.model = model
        self.prompt_layer = prompt_layer

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        out = self.model(input_ids=input_ids, output_hidden_states=True)
        if self.prompt_layer == -2:
            return out.hidden_states[-2].float()
        return out.hidden_states[-2].float(), out.hidden_states[self.prompt_layer].float()


class ClipPenultimateProjected(nn.Module):
    """CLIP text encoder with projection -> (penultimate hidden state, projected pooled[, the
    prompt layer's hidden state]); the pooled output is the last layer's, as in diffusers."""

    def __init__(self, model: nn.Module, prompt_layer: int = -2) -> None:
        super().__init__()
        self.model = model
        self.prompt_layer = prompt_layer

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(input_ids=input_ids, output_hidden_states=True)
        base = (out.hidden_states[-2].float(), out.text_embeds.float())
        if self.prompt_layer == -2:
            return base
        return (*base, out.hidden_states[self.prompt_layer].float())


def check_clip_skip(source: PipelineSource, clip_skip: int | None, *folders: str) -> None:
    """``InvalidInputError`` unless every CLIP in ``folders`` has the layer clip_skip asks for."""
    if clip_skip is None:
        return
    for folder in folders:
        layers = int(source.read_config(folder).get("num_hidden_layers", 0))
        if clip_skip > layers - 1:
            raise InvalidInputError(
                f"clip_skip {clip_skip} needs more than {clip_skip + 1} layers; {folder} has "
                f"{layers}"
            )


class SdxlNoisePrediction(nn.Module):
    """SDXL UNet -> noise prediction, inputs as the pipeline passes them."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.compute_dtype = module_dtype(model)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        text_embeds: torch.Tensor,
        time_ids: torch.Tensor,
    ) -> torch.Tensor:
        dt = self.compute_dtype
        return self.model(
            sample.to(dt),
            timestep,
            encoder_hidden_states=encoder_hidden_states.to(dt),
            added_cond_kwargs={"text_embeds": text_embeds.to(dt), "time_ids": time_ids.to(dt)},
            return_dict=False,
        )[0].float()


# --------------------------------------------------------------------------- constants


@dataclass(frozen=True)
class SdxlConstants:
    vae_scaling_factor: float
    vae_scale_factor: int
    latent_channels: int
    unet_downsample: int
    cross_attention_dim: int
    clip_hidden_size: int
    clip_2_hidden_size: int
    projection_dim: int
    clip_vocab_size: int
    force_zeros_for_empty_prompt: bool
    default_sample_size: int

    @property
    def resolution_multiple(self) -> int:
        # latents must halve cleanly through every UNet downsampling (no odd-size upsampling path)
        return self.vae_scale_factor * self.unet_downsample

    @property
    def default_size(self) -> Size:
        side = self.default_sample_size * self.vae_scale_factor
        return (side, side)


def read_constants(source: PipelineSource) -> SdxlConstants:
    require_components(source, REQUIRED_COMPONENTS)
    vae = source.read_config("vae")
    unet = source.read_config("unet")
    clip = source.read_config("text_encoder")
    clip2 = source.read_config("text_encoder_2")
    index = source.read_config(".", "model_index.json")
    try:
        if vae.get("latents_mean") is not None or vae.get("shift_factor"):
            raise InvalidInputError(
                f"{source.root}: the VAE has latents_mean/shift_factor, which SDXL's VAE has not"
            )
        if unet.get("addition_embed_type") != "text_time":
            raise InvalidInputError(
                f"{source.root}: unet addition_embed_type is {unet.get('addition_embed_type')!r}, "
                "SDXL's is 'text_time'"
            )
        constants = SdxlConstants(
            vae_scaling_factor=float(vae["scaling_factor"]),
            vae_scale_factor=2 ** (len(vae["block_out_channels"]) - 1),
            latent_channels=int(vae["latent_channels"]),
            unet_downsample=2 ** (len(unet["block_out_channels"]) - 1),
            cross_attention_dim=int(unet["cross_attention_dim"]),
            clip_hidden_size=int(clip["hidden_size"]),
            clip_2_hidden_size=int(clip2["hidden_size"]),
            projection_dim=int(clip2["projection_dim"]),
            clip_vocab_size=int(clip["vocab_size"]),
            force_zeros_for_empty_prompt=bool(index.get("force_zeros_for_empty_prompt", True)),
            default_sample_size=int(unet["sample_size"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"{source.root}: SDXL config incomplete or malformed: {exc}"
        ) from None
    if constants.cross_attention_dim != constants.clip_hidden_size + constants.clip_2_hidden_size:
        raise InvalidInputError(
            f"{source.root}: unet cross_attention_dim {constants.cross_attention_dim} != "
            f"{constants.clip_hidden_size} + {constants.clip_2_hidden_size} (the two CLIP widths)"
        )
    return constants


def clip_contract(
    name: str,
    kind: str,
    hidden: int,
    projection: int | None,
    batch: DimRange,
    trace: int,
    check: int,
    clip_skip: int | None = None,
) -> ComponentContract:
    """A CLIP encoder fed 77 ids: penultimate hidden states (and the projected pooled output;
    and with clip_skip, the prompt's hidden states from the skipped-to layer)."""
    outputs = [TensorSpec("hidden_states", "float32", ("batch", CLIP_LENGTH, hidden))]
    if projection is not None:
        outputs.append(TensorSpec("text_embeds", "float32", ("batch", projection)))
    if clip_skip is not None:
        outputs.append(TensorSpec(PROMPT_HIDDEN, "float32", ("batch", CLIP_LENGTH, hidden)))
    return ComponentContract(
        name=name,
        kind=kind,
        inputs=(TensorSpec("input_ids", "int64", ("batch", CLIP_LENGTH)),),
        outputs=tuple(outputs),
        dims={"batch": batch},
        trace_sizes={"batch": trace},
        check_sizes={"batch": check},
    )


def vae_contract(
    latent_channels: int, vsf: int, profile: ImageProfile, batch: DimRange, trace: int, check: int
) -> ComponentContract:
    lat_h, lat_w = latent_dims(profile, vsf)
    size = check_size(profile, 2 * vsf)
    return ComponentContract(
        name="vae_decoder",
        kind="vae_decoder",
        inputs=(
            TensorSpec(
                "latents", "float32", ("batch", latent_channels, "latent_height", "latent_width")
            ),
        ),
        outputs=(
            TensorSpec(
                "image", "float32", ("batch", 3, f"{vsf}*latent_height", f"{vsf}*latent_width")
            ),
        ),
        dims={"batch": batch, "latent_height": lat_h, "latent_width": lat_w},
        trace_sizes={
            "batch": trace,
            "latent_height": profile.opt_size[0] // vsf,
            "latent_width": profile.opt_size[1] // vsf,
        },
        check_sizes={
            "batch": check,
            "latent_height": size[0] // vsf,
            "latent_width": size[1] // vsf,
        },
    )


def contracts(
    constants: SdxlConstants, profile: ImageProfile, clip_skip: int | None = None
) -> dict[str, ComponentContract]:
    """The four SDXL component contracts, in export order."""
    vsf = constants.vae_scale_factor
    batch_t = DimRange(1, min(2, profile.max_batch), profile.max_batch)
    batch_1 = DimRange(1, 1, profile.max_batch)
    trace_batch = min(2, profile.max_batch)
    check_batch = _other(trace_batch, batch_1, 3, 1)
    lat_h, lat_w = latent_dims(profile, vsf)
    size = check_size(profile, constants.resolution_multiple)
    f32 = "float32"
    clip1 = clip_contract(
        "text_encoder",
        "clip_text_hidden",
        constants.clip_hidden_size,
        None,
        batch_1,
        trace_batch,
        check_batch,
        clip_skip,
    )
    clip2 = clip_contract(
        "text_encoder_2",
        "clip_text_hidden_projected",
        constants.clip_2_hidden_size,
        constants.projection_dim,
        batch_1,
        trace_batch,
        check_batch,
        clip_skip,
    )
    c = constants.latent_channels
    unet = ComponentContract(
        name="unet",
        kind="sdxl_unet",
        inputs=(
            TensorSpec("sample", f32, ("batch", c, "latent_height", "latent_width")),
            TensorSpec("timestep", f32, ("batch",)),
            TensorSpec(
                "encoder_hidden_states", f32, ("batch", CLIP_LENGTH, constants.cross_attention_dim)
            ),
            TensorSpec("text_embeds", f32, ("batch", constants.projection_dim)),
            TensorSpec("time_ids", f32, ("batch", TIME_IDS)),
        ),
        outputs=(TensorSpec("noise_pred", f32, ("batch", c, "latent_height", "latent_width")),),
        dims={"batch": batch_t, "latent_height": lat_h, "latent_width": lat_w},
        trace_sizes={
            "batch": trace_batch,
            "latent_height": profile.opt_size[0] // vsf,
            "latent_width": profile.opt_size[1] // vsf,
        },
        check_sizes={
            "batch": _other(trace_batch, batch_t, 3, 1),
            "latent_height": size[0] // vsf,
            "latent_width": size[1] // vsf,
        },
    )
    vae = vae_contract(c, vsf, profile, batch_1, trace_batch, check_batch)
    return {x.name: x for x in (clip1, clip2, unet, vae)}


# --------------------------------------------------------------------------- sample inputs


def sample_inputs(
    contract: ComponentContract,
    constants: SdxlConstants,
    sizes: Mapping[str, int],
    generator: torch.Generator,
) -> tuple[torch.Tensor, ...]:
    b = sizes["batch"]

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator)

    if contract.name in ("text_encoder", "text_encoder_2"):
        return (torch.randint(0, constants.clip_vocab_size, (b, CLIP_LENGTH), generator=generator),)
    if contract.name == "unet":
        h, w = sizes["latent_height"], sizes["latent_width"]
        time_ids = torch.tensor([1024.0, 1024.0, 0.0, 0.0, 1024.0, 1024.0]).repeat(b, 1)
        return (
            randn(b, constants.latent_channels, h, w),
            torch.rand(b, generator=generator) * 998 + 1,
            randn(b, CLIP_LENGTH, constants.cross_attention_dim),
            randn(b, constants.projection_dim),
            time_ids,
        )
    if contract.name == "vae_decoder":
        return (randn(b, constants.latent_channels, sizes["latent_height"], sizes["latent_width"]),)
    raise InvalidInputError(f"no SDXL component named {contract.name!r}")


# --------------------------------------------------------------------------- loading


def clip_loader(
    folder: Path, dtype: torch.dtype, projected: bool, clip_skip: int | None = None
) -> Callable[[], nn.Module]:
    layer = hidden_layer(clip_skip)

    def load() -> nn.Module:
        from transformers import CLIPTextModel, CLIPTextModelWithProjection

        if projected:
            return ClipPenultimateProjected(
                CLIPTextModelWithProjection.from_pretrained(folder, dtype=dtype), layer
            )
        return ClipPenultimate(CLIPTextModel.from_pretrained(folder, dtype=dtype), layer)

    return load


def vae_loader(folder: Path, dtype: torch.dtype) -> Callable[[], nn.Module]:
    def load() -> nn.Module:
        from diffusers import AutoencoderKL

        # ONNX (opset 18) Conv has no bfloat16 type: a bf16 export keeps the VAE in float32.
        vae_dtype = torch.float32 if dtype == torch.bfloat16 else dtype
        return VaeDecode(AutoencoderKL.from_pretrained(folder, torch_dtype=vae_dtype))

    return load


def loaders(
    source: PipelineSource, precision: str, clip_skip: int | None = None
) -> dict[str, Callable[[], nn.Module]]:
    dtype = TORCH_DTYPES[precision]

    def unet() -> nn.Module:
        from diffusers import UNet2DConditionModel

        return SdxlNoisePrediction(
            UNet2DConditionModel.from_pretrained(source.folder("unet"), torch_dtype=dtype)
        )

    return {
        "text_encoder": clip_loader(
            source.folder("text_encoder"), dtype, projected=False, clip_skip=clip_skip
        ),
        "text_encoder_2": clip_loader(
            source.folder("text_encoder_2"), dtype, projected=True, clip_skip=clip_skip
        ),
        "unet": unet,
        "vae_decoder": vae_loader(source.folder("vae"), dtype),
    }


def resolution_manifest(profile: ImageProfile) -> dict:
    return {
        "min": list(profile.min_size),
        "opt": list(profile.opt_size),
        "max": list(profile.max_size),
    }


def pipeline_manifest(
    source: PipelineSource, constants: SdxlConstants, profile: ImageProfile
) -> dict:
    default_h, default_w = constants.default_size
    return {
        "class_name": source.class_name,
        "vae_scaling_factor": constants.vae_scaling_factor,
        "vae_shift_factor": 0.0,
        "vae_scale_factor": constants.vae_scale_factor,
        "resolution_multiple": constants.resolution_multiple,
        "latent_channels": constants.latent_channels,
        "cross_attention_dim": constants.cross_attention_dim,
        "projection_dim": constants.projection_dim,
        "force_zeros_for_empty_prompt": constants.force_zeros_for_empty_prompt,
        "default_steps": DEFAULT_STEPS,
        "default_guidance_scale": DEFAULT_GUIDANCE_SCALE,
        "default_height": default_h,
        "default_width": default_w,
        "max_batch": profile.max_batch,
        "resolution": resolution_manifest(profile),
    }


SCORING_ENCODER = {
    "component": "text_encoder_2",
    "tokenizer": "tokenizer_2",
    "output": "hidden_states",
    "pooling": "masked_mean",
}
"""SDXL has no T5: the salient score pools OpenCLIP-bigG's (penultimate) hidden states."""


def clip_tokenizer_entry(folder: Path, out_dir: Path, name: str, encoder: str) -> TokenizerEntry:
    """Convert a CLIP tokenizer; a ``!``-padded one (OpenCLIP-bigG's) gets that preset."""
    entry = convert_clip(folder, out_dir, name, encoder)
    if entry.pad_id != entry.eos_id:
        entry = replace(entry, preset="openclip-bigg")
    return entry


def require_clip_files(source: PipelineSource, *folders: str) -> None:
    for folder in folders:
        require_file(source.folder(folder) / "vocab.json", "CLIP BPE vocabulary")
        require_file(source.folder(folder) / "merges.txt", "CLIP BPE merges")


def plan(source: PipelineSource, options: ExportOptions) -> ExportPlan:
    """The SDXL export plan for ``source`` under ``options``."""
    constants = read_constants(source)
    profile = resolve_image_profile(
        "SDXL", constants.default_size, constants.resolution_multiple, options
    )

    def write_tokenizers(out_dir: Path) -> list[TokenizerEntry]:
        return [
            clip_tokenizer_entry(source.folder("tokenizer"), out_dir, "tokenizer", "text_encoder"),
            clip_tokenizer_entry(
                source.folder("tokenizer_2"), out_dir, "tokenizer_2", "text_encoder_2"
            ),
        ]

    require_clip_files(source, "tokenizer", "tokenizer_2")
    check_clip_skip(source, options.clip_skip, "text_encoder", "text_encoder_2")
    scheduler_config = require_file(
        source.folder("scheduler") / "scheduler_config.json", "scheduler config"
    )
    family_plan = ExportPlan(
        family="sdxl",
        contracts=contracts(constants, profile, options.clip_skip),
        load=loaders(source, options.precision, options.clip_skip),
        sample_inputs=lambda contract, sizes, gen: sample_inputs(contract, constants, sizes, gen),
        write_tokenizers=write_tokenizers,
        scheduler_config=scheduler_config,
        pipeline={**pipeline_manifest(source, constants, profile), "clip_skip": options.clip_skip},
        scoring_encoder=dict(SCORING_ENCODER),
    )
    scheduler = source.read_config("scheduler", "scheduler_config.json")
    prediction = str(scheduler.get("prediction_type", "epsilon"))
    return with_sampler_step(family_plan, "unet", "sample", prediction)
