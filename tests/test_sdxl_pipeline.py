"""SDXL end to end: tiny random-weight pipeline exported with our exporter, sampled through ONNX
Runtime, compared with diffusers' StableDiffusionXLPipeline on the same weights, prompt and seed.

Tolerance: ATOL = 1e-4 on images in [0, 1]. The export check puts every component within 4e-6 of
torch (``manifest.check``, asserted below); over 4 Euler steps with CFG scale 5 those errors are
amplified at most ~(1 + 2*5) per step on the noise prediction before the VAE; 1e-4 leaves that
room yet is >10x below the change a negative makes to the image (asserted, so the comparisons
can fail).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from npc_rt.engine import open_engine
from npc_rt.errors import InvalidInputError, ShapeError
from npc_rt.generator import GenerationParams, ImageGenerator, SizeConditioning
from npc_rt.pipelines_cfg import CfgPipeline, load_cfg_engine

ATOL = 1e-4
PROMPT = "a red cube on top of a blue sphere"
NEGATIVE = "green grass, blurry"
SEED = 7
STEPS = 4
SIZE = 64
GUIDANCE = 5.0


@pytest.fixture(scope="module")
def diffusers_pipe(tiny_sdxl_pipeline_dir: Path):
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(tiny_sdxl_pipeline_dir)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def ours(tiny_sdxl_engine_dir: Path) -> CfgPipeline:
    return load_cfg_engine(open_engine(tiny_sdxl_engine_dir))


def params(negative_steps: int | None = None, steps: int = STEPS) -> GenerationParams:
    return GenerationParams(
        steps=steps,
        height=SIZE,
        width=SIZE,
        guidance=GUIDANCE,
        true_cfg=1.0,
        negative_steps=negative_steps,
    )


def diffusers_images(pipe, negative: str | None, **kwargs) -> np.ndarray:
    return pipe(
        PROMPT,
        negative_prompt=negative,
        **kwargs,
        num_inference_steps=STEPS,
        height=SIZE,
        width=SIZE,
        guidance_scale=GUIDANCE,
        generator=torch.Generator().manual_seed(SEED),
        output_type="np",
    ).images


@torch.no_grad()
def reference_with_cutoff(pipe, negative: str, negative_steps: int) -> np.ndarray:
    """diffusers' own modules in a loop: the negative's embeddings are the uncond ones for
    steps < negative_steps, the pipeline's empty-prompt ones (zeros: force_zeros) after."""
    cond, neg, pooled, neg_pooled = pipe.encode_prompt(PROMPT, negative_prompt=negative)
    _, empty, _, empty_pooled = pipe.encode_prompt(PROMPT, negative_prompt=None)
    scheduler = pipe.scheduler
    scheduler.set_timesteps(STEPS)
    latents = torch.randn(
        (1, 4, SIZE // 8, SIZE // 8), generator=torch.Generator().manual_seed(SEED)
    )
    latents = latents * scheduler.init_noise_sigma
    time_ids = torch.tensor([[SIZE, SIZE, 0, 0, SIZE, SIZE]] * 2, dtype=torch.float32)
    for i, t in enumerate(scheduler.timesteps):
        u, u_pooled = (neg, neg_pooled) if i < negative_steps else (empty, empty_pooled)
        x = scheduler.scale_model_input(torch.cat([latents] * 2), t)
        out = pipe.unet(
            x,
            t,
            encoder_hidden_states=torch.cat([u, cond]),
            added_cond_kwargs={"text_embeds": torch.cat([u_pooled, pooled]), "time_ids": time_ids},
        ).sample
        uncond_pred, cond_pred = out.chunk(2)
        pred = uncond_pred + GUIDANCE * (cond_pred - uncond_pred)
        latents = scheduler.step(pred, t, latents).prev_sample
    image = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
    return pipe.image_processor.postprocess(image, output_type="np")


def test_manifest_and_export_check(tiny_sdxl_engine_dir: Path) -> None:
    engine = open_engine(tiny_sdxl_engine_dir)
    assert engine.family == "sdxl"
    assert engine.scoring_encoder["component"] == "text_encoder_2"
    assert engine.scoring_encoder["output"] == "hidden_states"
    assert engine.tokenizer("tokenizer").preset == "clip-l"
    assert engine.tokenizer("tokenizer_2").preset == "openclip-bigg"
    assert engine.tokenizer("tokenizer_2").pad_id == 0
    assert engine.component("text_encoder_2").output_names == ("hidden_states", "text_embeds")
    for name, check in engine.manifest["check"]["components"].items():
        assert check["status"] == "ok", name
        assert check["max_abs_error"] < 4e-6 * max(1.0, check["max_abs_reference"]), name


def test_no_negative_matches_diffusers(diffusers_pipe, ours: CfgPipeline) -> None:
    expected = diffusers_images(diffusers_pipe, None)
    got = ours.sample(PROMPT, seed=SEED, negatives=(None,), params=params()).images
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)


def test_negative_on_all_steps_matches_diffusers(diffusers_pipe, ours: CfgPipeline) -> None:
    expected = diffusers_images(diffusers_pipe, NEGATIVE)
    without = diffusers_images(diffusers_pipe, None)
    assert np.abs(expected - without).max() > 10 * ATOL  # the negative matters at this tolerance
    got = ours.sample(PROMPT, seed=SEED, negatives=(NEGATIVE,), params=params()).images
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)
    default = ours.sample(PROMPT, seed=SEED, negatives=(NEGATIVE,), params=params(None)).images
    np.testing.assert_array_equal(default, got)  # default negative_steps = every step


def test_negative_for_first_steps_matches_reference_loop(diffusers_pipe, ours) -> None:
    # the reference loop itself reproduces diffusers when the negative covers every step
    full = reference_with_cutoff(diffusers_pipe, NEGATIVE, STEPS)
    np.testing.assert_allclose(full, diffusers_images(diffusers_pipe, NEGATIVE), atol=1e-6)
    cutoff = 2
    expected = reference_with_cutoff(diffusers_pipe, NEGATIVE, cutoff)
    assert np.abs(expected - full).max() > 10 * ATOL
    got = ours.sample(PROMPT, seed=SEED, negatives=(NEGATIVE,), params=params(cutoff)).images
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)


SIZE_CONDITIONING = {
    "original_size": (128, 96),
    "crops_coords_top_left": (8, 16),
    "target_size": (48, 64),
    "negative_original_size": (32, 32),
    "negative_crops_coords_top_left": (4, 0),
    "negative_target_size": (64, 32),
}


def test_size_conditioning_matches_diffusers(diffusers_pipe, ours: CfgPipeline) -> None:
    """SDXL's micro-conditioning (diffusers' original_size, crops_coords_top_left, target_size
    and negative_* arguments), with and without a negative prompt."""
    conditioning = SizeConditioning(**SIZE_CONDITIONING)
    with_sizes = replace(params(), size_conditioning=conditioning)
    for negative in (None, NEGATIVE):
        expected = diffusers_images(diffusers_pipe, negative, **SIZE_CONDITIONING)
        plain = diffusers_images(diffusers_pipe, negative)
        assert np.abs(expected - plain).max() > 10 * ATOL  # the sizes matter at this tolerance
        got = ours.sample(PROMPT, seed=SEED, negatives=(negative,), params=with_sizes).images
        np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)
    # without negative sizes the unconditional rows get the positive triple, as in diffusers
    positive_only = {k: v for k, v in SIZE_CONDITIONING.items() if not k.startswith("negative")}
    expected = diffusers_images(diffusers_pipe, NEGATIVE, **positive_only)
    got = ours.sample(
        PROMPT,
        seed=SEED,
        negatives=(NEGATIVE,),
        params=replace(params(), size_conditioning=SizeConditioning(**positive_only)),
    ).images
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)


def test_size_conditioning_is_checked() -> None:
    with pytest.raises(InvalidInputError, match="go together"):
        SizeConditioning(negative_original_size=(64, 64))
    with pytest.raises(InvalidInputError, match="original_size must be two integers >= 1"):
        SizeConditioning(original_size=(0, 64))
    with pytest.raises(InvalidInputError, match="crops_coords_top_left must be two integers"):
        SizeConditioning(crops_coords_top_left=(-1, 0))
    positive, negative = SizeConditioning(crops_coords_top_left=(3, 4)).time_ids(64, 32)
    assert positive.tolist() == [64, 32, 3, 4, 64, 32] and negative.tolist() == positive.tolist()


def test_batched_candidates_equal_separate_runs(ours: CfgPipeline) -> None:
    negatives = (None, NEGATIVE, "a dog")
    p = params(2)
    batched = ours.sample(PROMPT, seed=SEED, negatives=negatives, params=p).images
    assert batched.shape == (3, SIZE, SIZE, 3)
    for k, neg in enumerate(negatives):
        alone = ours.sample(PROMPT, seed=SEED, negatives=(neg,), params=p).images[0]
        np.testing.assert_allclose(batched[k], alone, atol=1e-5, rtol=0)
    assert np.abs(batched[0] - batched[1]).max() > 10 * ATOL


def test_generator_contract_and_scoring_encoder(ours: CfgPipeline, diffusers_pipe) -> None:
    assert isinstance(ours, ImageGenerator)
    assert ours.family == "sdxl"
    assert ours.max_candidates_per_batch == 4  # max batch 8 = 2K rows
    images = ours.generate(PROMPT, seed=SEED, negatives=(None, NEGATIVE), params=params())
    assert [im.negative for im in images] == [None, NEGATIVE]
    assert images[0].pixels.dtype == np.uint8 and images[0].pixels.shape == (SIZE, SIZE, 3)
    scorer = ours.scoring_encoder()
    batch = scorer.tokenizer.encode_batch(["a red cube", "two dogs"], padding="max_length")
    ids = np.asarray(batch.input_ids, dtype=np.int64)
    hidden = scorer.encode(ids, np.asarray(batch.attention_mask, dtype=np.int64))
    with torch.no_grad():
        out = diffusers_pipe.text_encoder_2(torch.from_numpy(ids), output_hidden_states=True)
    np.testing.assert_allclose(hidden, out.hidden_states[-2].numpy(), atol=1e-4)
    want = diffusers_pipe.tokenizer_2(
        ["a red cube", "two dogs"], padding="max_length", max_length=77, truncation=True
    ).input_ids
    np.testing.assert_array_equal(ids, np.asarray(want))


def test_bad_input_is_refused_before_compute(ours: CfgPipeline) -> None:
    with pytest.raises(InvalidInputError, match="negative_steps"):
        ours.sample(PROMPT, seed=SEED, params=params(STEPS + 1))
    with pytest.raises(ShapeError, match="multiple"):
        ours.sample(PROMPT, seed=SEED, params=GenerationParams(STEPS, 72, 64, GUIDANCE, 1.0, None))
    with pytest.raises(ShapeError, match="range"):
        ours.sample(PROMPT, seed=SEED, params=GenerationParams(STEPS, 256, 64, GUIDANCE, 1.0, None))
    with pytest.raises(InvalidInputError, match="prompt"):
        ours.sample("  ", seed=SEED, params=params())


def test_guidance_one_disables_cfg_as_diffusers(diffusers_pipe, ours: CfgPipeline) -> None:
    expected = diffusers_pipe(
        PROMPT,
        num_inference_steps=2,
        height=SIZE,
        width=SIZE,
        guidance_scale=1.0,
        generator=torch.Generator().manual_seed(SEED),
        output_type="np",
    ).images
    p = GenerationParams(2, SIZE, SIZE, 1.0, 1.0, None)
    got = ours.sample(PROMPT, seed=SEED, negatives=(NEGATIVE,), params=p).images
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)


def test_texts_are_encoded_once(ours: CfgPipeline) -> None:
    ours.clear_text_cache()
    p = params(1, steps=1)
    ours.sample(PROMPT, seed=SEED, negatives=(NEGATIVE, None), params=p)
    misses = ours.text_cache.misses
    ours.sample(PROMPT, seed=SEED + 1, negatives=(NEGATIVE,), params=p)
    assert ours.text_cache.misses == misses  # prompt and negative came from the cache
    assert len(ours.text_cache) == 2


def test_cli_size_conditioning(ours: CfgPipeline, tiny_sdxl_engine_dir: Path, tmp_path: Path):
    import json

    from npc_rt.cli import main
    from npc_rt.records import read_png_text
    from PIL import Image

    png = tmp_path / "sized.png"
    argv = [
        "generate", "--engine", str(tiny_sdxl_engine_dir), "--prompt", PROMPT,
        "--seed", str(SEED), "--steps", str(STEPS), "--height", str(SIZE), "--width", str(SIZE),
        "--guidance", str(GUIDANCE), "--original-size", "128x96", "--crops-coords-top-left", "8,16",
        "--out", str(png),
    ]  # fmt: skip
    assert main(argv) == 0
    record = json.loads(read_png_text(png)["npc_rt"])
    assert record["size_conditioning"]["original_size"] == [128, 96]
    sized = SizeConditioning(original_size=(128, 96), crops_coords_top_left=(8, 16))
    (expected,) = ours.generate(
        PROMPT, seed=SEED, params=replace(params(), size_conditioning=sized)
    )
    pixels = np.asarray(Image.open(png).convert("RGB"))
    assert np.abs(pixels.astype(int) - expected.pixels.astype(int)).max() <= 1
    assert main([*argv[:-2], "--target-size", "64", "--out", str(png)]) == 1  # not AxB


@pytest.fixture(scope="module")
def clip_skip_engine(tiny_sdxl_pipeline_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    from npc_rt_export import ExportOptions, export_pipeline
    from npc_rt_export.tiny.sdxl import TINY_SDXL_EXPORT

    out = tmp_path_factory.mktemp("sdxl-clip-skip") / "engine"
    export_pipeline(tiny_sdxl_pipeline_dir, out, ExportOptions(**TINY_SDXL_EXPORT, clip_skip=1))
    return out


def test_clip_skip_export_matches_diffusers(diffusers_pipe, clip_skip_engine: Path) -> None:
    """clip_skip is fixed at export (the text encoders output that layer); the engine then
    matches diffusers called with the same clip_skip."""
    engine = open_engine(clip_skip_engine)
    assert engine.pipeline["clip_skip"] == 1
    skipped = load_cfg_engine(engine)
    expected = diffusers_images(diffusers_pipe, NEGATIVE, clip_skip=1)
    plain = diffusers_images(diffusers_pipe, NEGATIVE)
    assert np.abs(expected - plain).max() > 10 * ATOL  # the layer choice matters
    got = skipped.sample(PROMPT, seed=SEED, negatives=(NEGATIVE,), params=params()).images
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)


def test_clip_skip_beyond_the_encoder_is_refused(tiny_sdxl_pipeline_dir: Path) -> None:
    from npc_rt_export import ExportOptions
    from npc_rt_export.sdxl import plan
    from npc_rt_export.source import open_source

    source = open_source(tiny_sdxl_pipeline_dir)
    with pytest.raises(InvalidInputError, match="clip_skip 2 needs more than 3 layers"):
        plan(source, ExportOptions(clip_skip=2, min_size=(32, 32), max_size=(128, 128)))
    with pytest.raises(InvalidInputError, match="clip_skip must be an integer >= 1"):
        ExportOptions(clip_skip=0)


def test_clip_skip_in_the_manifest_must_match_the_encoders(
    tiny_sdxl_engine_dir: Path, tmp_path: Path
) -> None:
    import json
    import shutil

    from npc_rt.errors import EngineError

    copy = Path(shutil.copytree(tiny_sdxl_engine_dir, tmp_path / "engine"))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["pipeline"]["clip_skip"] = 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(EngineError, match="clip_skip is 1 but text_encoder lacks"):
        load_cfg_engine(open_engine(copy))
