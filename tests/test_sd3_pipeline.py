"""SD3 end to end: tiny random-weight pipeline exported with our exporter, sampled through ONNX
Runtime, compared with diffusers' StableDiffusion3Pipeline on the same weights, prompt and seed.

Tolerance: ATOL = 1e-4 on images in [0, 1], for the same reason as the SDXL test: every component
is within 4e-6 of torch in the export check (asserted), the 4 flow-match steps with CFG scale 7
amplify that at most ~15x per step on the velocity, and 1e-4 stays >10x below the change a
negative makes (asserted, so the comparisons can fail).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from npc_rt.engine import open_engine
from npc_rt.families.sd3 import joint_sequence
from npc_rt.generator import GenerationParams, ImageGenerator
from npc_rt.pipeline import load_engine
from npc_rt.pipelines_cfg import CfgPipeline

ATOL = 1e-4
PROMPT = "a red cube on top of a blue sphere"
NEGATIVE = "green grass, blurry"
SEED = 11
STEPS = 4
SIZE = 64
GUIDANCE = 7.0
MAX_SEQ = 32  # TINY_SD3_EXPORT's T5 length


@pytest.fixture(scope="module")
def diffusers_pipe(tiny_sd3_pipeline_dir: Path):
    from diffusers import StableDiffusion3Pipeline

    pipe = StableDiffusion3Pipeline.from_pretrained(tiny_sd3_pipeline_dir)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def ours(tiny_sd3_engine_dir: Path) -> CfgPipeline:
    pipeline = load_engine(tiny_sd3_engine_dir)
    assert isinstance(pipeline, CfgPipeline)
    return pipeline


def params(negative_steps: int | None = None) -> GenerationParams:
    return GenerationParams(STEPS, SIZE, SIZE, GUIDANCE, 1.0, negative_steps)


def diffusers_images(pipe, negative: str | None, **kwargs) -> np.ndarray:
    return pipe(
        PROMPT,
        negative_prompt=negative,
        **kwargs,
        num_inference_steps=STEPS,
        height=SIZE,
        width=SIZE,
        guidance_scale=GUIDANCE,
        max_sequence_length=MAX_SEQ,
        generator=torch.Generator().manual_seed(SEED),
        output_type="np",
    ).images


@torch.no_grad()
def reference_with_cutoff(pipe, negative: str, negative_steps: int) -> np.ndarray:
    """diffusers' modules in a loop: the negative's embeddings are the uncond ones for
    steps < negative_steps, the empty prompt's after."""
    kw = {"prompt_2": None, "prompt_3": None, "max_sequence_length": MAX_SEQ}
    cond, neg, pooled, neg_pooled = pipe.encode_prompt(PROMPT, negative_prompt=negative, **kw)
    _, empty, _, empty_pooled = pipe.encode_prompt(PROMPT, negative_prompt=None, **kw)
    scheduler = pipe.scheduler
    scheduler.set_timesteps(STEPS)
    latents = torch.randn(
        (1, 16, SIZE // 8, SIZE // 8), generator=torch.Generator().manual_seed(SEED)
    )
    for i, t in enumerate(scheduler.timesteps):
        u, u_pooled = (neg, neg_pooled) if i < negative_steps else (empty, empty_pooled)
        out = pipe.transformer(
            hidden_states=torch.cat([latents] * 2),
            timestep=t.expand(2),
            encoder_hidden_states=torch.cat([u, cond]),
            pooled_projections=torch.cat([u_pooled, pooled]),
        ).sample
        uncond_pred, cond_pred = out.chunk(2)
        pred = uncond_pred + GUIDANCE * (cond_pred - uncond_pred)
        latents = scheduler.step(pred, t, latents).prev_sample
    vae = pipe.vae
    image = vae.decode(latents / vae.config.scaling_factor + vae.config.shift_factor).sample
    return pipe.image_processor.postprocess(image, output_type="np")


def test_manifest_and_export_check(tiny_sd3_engine_dir: Path) -> None:
    engine = open_engine(tiny_sd3_engine_dir)
    assert engine.family == "sd3"
    assert engine.scoring_encoder["component"] == "text_encoder_3"
    assert engine.tokenizer("tokenizer_2").preset == "openclip-bigg"
    assert engine.tokenizer("tokenizer_3").max_length == MAX_SEQ
    assert engine.component("transformer").dims["joint_length"].max == 77 + MAX_SEQ
    for name, check in engine.manifest["check"]["components"].items():
        assert check["status"] == "ok", name
        assert check["max_abs_error"] < 4e-6 * max(1.0, check["max_abs_reference"]), name


def test_joint_embedding_matches_diffusers(diffusers_pipe, ours: CfgPipeline) -> None:
    (emb,) = ours.encode_texts([PROMPT])
    with torch.no_grad():
        cond, _, pooled, _ = diffusers_pipe.encode_prompt(
            PROMPT, None, None, do_classifier_free_guidance=False, max_sequence_length=MAX_SEQ
        )
    assert emb.sequence.shape == tuple(cond.shape[1:])
    np.testing.assert_allclose(emb.sequence, cond[0].numpy(), atol=2e-5)
    np.testing.assert_allclose(emb.pooled, pooled[0].numpy(), atol=2e-5)
    a, b, t5 = np.ones((1, 77, 3)), np.full((1, 77, 2), 2.0), np.full((1, 5, 8), 3.0)
    joined = joint_sequence(a, b, t5)
    assert joined.shape == (1, 82, 8)
    assert (joined[0, :77, :3] == 1).all() and (joined[0, :77, 3:5] == 2).all()
    assert (joined[0, :77, 5:] == 0).all() and (joined[0, 77:] == 3).all()


def test_no_negative_and_negative_match_diffusers(diffusers_pipe, ours: CfgPipeline) -> None:
    without = diffusers_images(diffusers_pipe, None)
    with_neg = diffusers_images(diffusers_pipe, NEGATIVE)
    assert np.abs(without - with_neg).max() > 10 * ATOL
    got = ours.sample(PROMPT, seed=SEED, negatives=(None, NEGATIVE), params=params()).images
    np.testing.assert_allclose(got[0], without[0], atol=ATOL, rtol=0)
    np.testing.assert_allclose(got[1], with_neg[0], atol=ATOL, rtol=0)


def test_negative_for_first_steps_matches_reference_loop(diffusers_pipe, ours) -> None:
    full = reference_with_cutoff(diffusers_pipe, NEGATIVE, STEPS)
    np.testing.assert_allclose(full, diffusers_images(diffusers_pipe, NEGATIVE), atol=1e-6)
    cutoff = 1
    expected = reference_with_cutoff(diffusers_pipe, NEGATIVE, cutoff)
    assert np.abs(expected - full).max() > 10 * ATOL
    got = ours.sample(PROMPT, seed=SEED, negatives=(NEGATIVE,), params=params(cutoff)).images
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)


def test_batched_candidates_equal_separate_runs(ours: CfgPipeline) -> None:
    negatives = (NEGATIVE, None, "a dog")
    p = params(2)
    batched = ours.sample(PROMPT, seed=SEED, negatives=negatives, params=p).images
    for k, neg in enumerate(negatives):
        alone = ours.sample(PROMPT, seed=SEED, negatives=(neg,), params=p).images[0]
        np.testing.assert_allclose(batched[k], alone, atol=1e-5, rtol=0)


def test_generator_contract_and_t5_scoring(ours: CfgPipeline, diffusers_pipe) -> None:
    assert isinstance(ours, ImageGenerator) and ours.family == "sd3"
    assert ours.default_params.guidance == 7.0 and ours.default_params.steps == 28
    scorer = ours.scoring_encoder()
    batch = scorer.tokenizer.encode_batch(["a red cube", "two dogs on grass"], padding="max_length")
    ids = np.asarray(batch.input_ids, dtype=np.int64)
    mask = np.asarray(batch.attention_mask, dtype=np.int64)
    hidden = scorer.encode(ids, mask)
    with torch.no_grad():
        want = diffusers_pipe.text_encoder_3(
            torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)
        )[0]
    np.testing.assert_allclose(hidden, want.numpy(), atol=1e-4)


def test_size_conditioning_is_refused_outside_sdxl(
    ours: CfgPipeline, tiny_flux_engine_dir: Path
) -> None:
    from dataclasses import replace

    from npc_rt.errors import InvalidInputError
    from npc_rt.generator import SizeConditioning

    sized = SizeConditioning(original_size=(128, 128))
    for pipeline in (ours, load_engine(tiny_flux_engine_dir, providers=["cpu"])):
        params = replace(pipeline.default_params, steps=4, size_conditioning=sized)
        with pytest.raises(InvalidInputError, match="SDXL's micro-conditioning; a (sd3|flux)"):
            pipeline.sample("a cat", seed=0, params=params)


def test_clip_skip_picks_diffusers_layer(tiny_sd3_pipeline_dir: Path, diffusers_pipe) -> None:
    """SD3's CLIP encoders exported with clip_skip=1 give diffusers' ``_get_clip_prompt_embeds``
    with clip_skip=1 (``hidden_states[-3]``) for prompts and the penultimate layer for negatives
    (diffusers passes clip_skip=None for them); the pooled output stays the last layer's."""
    from npc_rt_export import ExportOptions
    from npc_rt_export.sd3 import plan
    from npc_rt_export.source import open_source
    from npc_rt_export.tiny.sd3 import TINY_SD3_EXPORT

    sd3_plan = plan(
        open_source(tiny_sd3_pipeline_dir), ExportOptions(**TINY_SD3_EXPORT, clip_skip=1)
    )
    assert sd3_plan.pipeline["clip_skip"] == 1
    ids = diffusers_pipe.tokenizer(
        ["a red cube"], padding="max_length", max_length=77, truncation=True, return_tensors="pt"
    ).input_ids
    with torch.no_grad():
        penultimate, pooled, hidden = sd3_plan.load["text_encoder"]()(ids)
        want, want_pooled = diffusers_pipe._get_clip_prompt_embeds(
            "a red cube", clip_skip=1, clip_model_index=0
        )
        default, _ = diffusers_pipe._get_clip_prompt_embeds("a red cube", clip_model_index=0)
    assert torch.equal(hidden, want) and torch.equal(pooled, want_pooled)
    assert torch.equal(penultimate, default)  # negatives keep this one, as in diffusers
    assert not torch.allclose(hidden, default)
    outputs = sd3_plan.contracts["text_encoder"].output_names
    assert outputs == ("hidden_states", "text_embeds", "prompt_hidden_states")


SLG = {
    "skip_guidance_layers": [1],
    "skip_layer_guidance_scale": 2.8,
    "skip_layer_guidance_start": 0.01,
    "skip_layer_guidance_stop": 0.8,  # steps 1..3 of 4 run the skip pass
}


def test_skip_layer_flag_is_diffusers_skip_layers(tiny_sd3_pipeline_dir: Path) -> None:
    """The exported transformer's per-row ``skip_layers`` input: a row with block j flagged is
    diffusers' transformer called with ``skip_layers=[j]``; unflagged rows are the plain call."""
    from npc_rt_export import ExportOptions
    from npc_rt_export.sd3 import plan
    from npc_rt_export.source import open_source
    from npc_rt_export.tiny.sd3 import TINY_SD3_EXPORT

    sd3_plan = plan(open_source(tiny_sd3_pipeline_dir), ExportOptions(**TINY_SD3_EXPORT))
    wrapper = sd3_plan.load["transformer"]()
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 16, 8, 8, generator=gen)
    text = torch.randn(2, 77 + MAX_SEQ, wrapper.model.config.joint_attention_dim, generator=gen)
    pooled = torch.randn(2, wrapper.model.config.pooled_projection_dim, generator=gen)
    t = torch.tensor([500.0, 500.0])
    mask = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    with torch.no_grad():
        ours_out = wrapper(x, text, pooled, t, mask)
        plain = wrapper.model(x, text, pooled, t, return_dict=False)[0]
        skipped = wrapper.model(x, text, pooled, t, return_dict=False, skip_layers=[1])[0]
    torch.testing.assert_close(ours_out[0], plain[0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours_out[1], skipped[1], rtol=1e-6, atol=1e-6)
    assert not torch.allclose(plain[1], skipped[1], atol=1e-3)


@pytest.mark.parametrize("resident", [False, True])
def test_skip_layer_guidance_matches_diffusers(
    diffusers_pipe, tiny_sd3_engine_dir: Path, resident: bool
) -> None:
    """SD3.5-style skip-layer guidance: the skip pass rides in the batch as K more rows; host loop
    and device-resident loop (the sampler step's skip term) both match diffusers."""
    from dataclasses import replace

    from npc_rt.generator import SkipLayerGuidance

    pipeline = load_engine(tiny_sd3_engine_dir, resident=resident)
    slg = SkipLayerGuidance(layers=(1,), scale=2.8, start=0.01, stop=0.8)
    with_slg = replace(params(), skip_layer_guidance=slg)
    for negative in (None, NEGATIVE):
        expected = diffusers_images(diffusers_pipe, negative, **SLG)
        plain = diffusers_images(diffusers_pipe, negative)
        assert np.abs(expected - plain).max() > 10 * ATOL  # the skip pass matters
        got = pipeline.sample(PROMPT, seed=SEED, negatives=(negative,), params=with_slg).images
        np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)
    # K candidates in one call (3K backbone rows) equal separate calls
    both = pipeline.sample(PROMPT, seed=SEED, negatives=(None, NEGATIVE), params=with_slg).images
    alone = pipeline.sample(PROMPT, seed=SEED, negatives=(NEGATIVE,), params=with_slg).images
    np.testing.assert_allclose(both[1], alone[0], atol=1e-5, rtol=0)


def test_skip_layer_guidance_is_checked(ours: CfgPipeline, tiny_flux_engine_dir: Path) -> None:
    from dataclasses import replace

    from npc_rt.errors import InvalidInputError
    from npc_rt.generator import SkipLayerGuidance

    with pytest.raises(InvalidInputError, match="the transformer has 2 blocks"):
        ours.sample(
            PROMPT,
            seed=0,
            params=replace(params(), skip_layer_guidance=SkipLayerGuidance(layers=(2,))),
        )
    with pytest.raises(InvalidInputError, match="block indices >= 0"):
        SkipLayerGuidance(layers=())
    with pytest.raises(InvalidInputError, match="start <= stop"):
        SkipLayerGuidance(layers=(0,), start=0.5, stop=0.1)
    flux = load_engine(tiny_flux_engine_dir, providers=["cpu"])
    flux_params = replace(
        flux.default_params, steps=4, skip_layer_guidance=SkipLayerGuidance(layers=(0,))
    )
    with pytest.raises(InvalidInputError, match="skip_layer_guidance is SD3's"):
        flux.sample(PROMPT, seed=0, params=flux_params)
    slg = SkipLayerGuidance(layers=(0,), start=0.01, stop=0.2)
    assert [i for i in range(28) if slg.active(i, 28)] == [1, 2, 3, 4, 5]  # diffusers' rule


def test_cli_skip_layer_guidance(ours: CfgPipeline, tiny_sd3_engine_dir: Path, tmp_path: Path):
    import json
    from dataclasses import replace

    from npc_rt.cli import main
    from npc_rt.generator import SkipLayerGuidance
    from npc_rt.records import read_png_text
    from PIL import Image

    png = tmp_path / "slg.png"
    argv = [
        "generate", "--engine", str(tiny_sd3_engine_dir), "--prompt", PROMPT, "--seed", str(SEED),
        "--steps", str(STEPS), "--height", str(SIZE), "--width", str(SIZE), "--guidance",
        str(GUIDANCE), "--skip-layers", "1", "--skip-layer-stop", "0.8", "--out", str(png),
    ]  # fmt: skip
    assert main(argv) == 0
    record = json.loads(read_png_text(png)["npc_rt"])
    assert record["skip_layer_guidance"]["layers"] == [1]
    slg = SkipLayerGuidance(layers=(1,), stop=0.8)
    (expected,) = ours.generate(
        PROMPT, seed=SEED, params=replace(params(), skip_layer_guidance=slg)
    )
    pixels = np.asarray(Image.open(png).convert("RGB"))
    assert np.abs(pixels.astype(int) - expected.pixels.astype(int)).max() <= 1
    assert main([*argv[:-4], "--skip-layers", "x", "--out", str(png)]) == 1
