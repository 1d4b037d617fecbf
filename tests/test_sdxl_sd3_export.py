"""SDXL/SD3 export planning: family detection, contracts and profiles, refused options."""

from __future__ import annotations

from pathlib import Path

import pytest
from npc_rt.errors import InvalidInputError
from npc_rt_export import ExportOptions
from npc_rt_export import sd3 as sd3_export
from npc_rt_export import sdxl as sdxl_export
from npc_rt_export.source import open_source
from npc_rt_export.tiny.sd3 import TINY_SD3_EXPORT
from npc_rt_export.tiny.sdxl import TINY_SDXL_EXPORT


def test_sdxl_plan_contracts(tiny_sdxl_pipeline_dir: Path) -> None:
    source = open_source(tiny_sdxl_pipeline_dir)
    assert source.family == "sdxl"
    plan = sdxl_export.plan(source, ExportOptions(**TINY_SDXL_EXPORT))
    assert list(plan.contracts) == [
        "text_encoder",
        "text_encoder_2",
        "unet",
        "vae_decoder",
        "sampler_step",
    ]
    assert plan.contracts["sampler_step"].kind == "eps_euler_step"  # the scheduler's prediction
    unet = plan.contracts["unet"]
    assert unet.dims["batch"].max == TINY_SDXL_EXPORT["max_batch"]
    # 64 px opt -> 8 latent rows, 128 px max -> 16 (vae_scale_factor 8)
    assert (unet.dims["latent_height"].opt, unet.dims["latent_height"].max) == (8, 16)
    assert unet.profile("max")["sample"] == [8, 4, 16, 16]
    assert unet.profile("min")["time_ids"] == [1, 6]
    assert plan.contracts["text_encoder_2"].output_names == ("hidden_states", "text_embeds")
    assert plan.pipeline["resolution_multiple"] == 16  # 8 (VAE) x 2 (one UNet downsampling)
    assert plan.pipeline["force_zeros_for_empty_prompt"] is True
    assert plan.pipeline["vae_shift_factor"] == 0.0
    assert plan.scoring_encoder["component"] == "text_encoder_2"


def test_sdxl_plan_refuses_sizes_off_the_unit(tiny_sdxl_pipeline_dir: Path) -> None:
    source = open_source(tiny_sdxl_pipeline_dir)
    with pytest.raises(InvalidInputError, match="multiples of 16"):
        sdxl_export.plan(source, ExportOptions(min_size=(40, 40), max_size=(128, 128)))


def test_sd3_plan_contracts(tiny_sd3_pipeline_dir: Path) -> None:
    source = open_source(tiny_sd3_pipeline_dir)
    assert source.family == "sd3"
    plan = sd3_export.plan(source, ExportOptions(**TINY_SD3_EXPORT))
    assert list(plan.contracts) == [
        "text_encoder",
        "text_encoder_2",
        "text_encoder_3",
        "transformer",
        "vae_decoder",
        "sampler_step",
    ]
    tr = plan.contracts["transformer"]
    assert tr.dims["joint_length"].max == 77 + TINY_SD3_EXPORT["max_sequence_length"]
    assert tr.profile("opt")["hidden_states"] == [2, 16, 8, 8]
    assert plan.pipeline["resolution_multiple"] == 16  # 8 (VAE) x 2 (patch size)
    assert plan.scoring_encoder == sd3_export.SCORING_ENCODER
    with pytest.raises(InvalidInputError, match="limit"):
        sd3_export.plan(source, ExportOptions(max_sequence_length=600))
