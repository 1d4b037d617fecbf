"""FLUX through ONNX Runtime against diffusers' FluxPipeline on the same tiny random weights.

Tolerance of the image parity tests (float images in [0, 1], before uint8 quantisation):
``IMAGE_ATOL`` = 2e-4. Why: the export check bounds each ONNX component's error against its torch
module; for the tiny engine it records max_abs_error / max(1, max_abs_reference) of 3.3e-7 (CLIP),
4.2e-7 (T5), 1.6e-6 (transformer) and 2.1e-6 (VAE decoder), and the first test below asserts each
stays under ``COMPONENT_ERROR_BOUND`` = 1e-5. The sampler adds each step's prediction error times
|dt| <= 1, true CFG multiplies the cond/neg difference by s = 1.8 (error up to (1 + 2s) = 4.6
times one prediction's), and postprocess halves the VAE output: four steps at 4.6e-5 each plus
the VAE's 1e-5 stay under 2e-4. The observed maximum is 1.6e-6. A real mistake (wrong timestep,
ids, shift, noise or guidance) moves pixels by 1e-2 or more (``SIGNAL``). Everything that is not
model arithmetic (schedule, noise, packing, guidance) is bit-identical and tested so.
"""
# ruff: noqa: F811  (the tiny FLUX fixtures are imported by name and requested as arguments)

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from npc_rt.errors import EngineError, InvalidInputError, NonFiniteError, ShapeError
from npc_rt.families import flux
from npc_rt.generator import GenerationParams, ImageGenerator, ScoringEncoder

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("onnx")

from fixtures.tiny_flux import (  # noqa: E402,F401  (pytest fixtures)
    TINY_MAX_SEQUENCE_LENGTH,
    tiny_flux_engine_dir,
    tiny_flux_pipeline_dir,
)

IMAGE_ATOL = 2e-4
COMPONENT_ERROR_BOUND = 1e-5
BATCH_ATOL = 1e-5
SIGNAL = 5e-3
"""Smallest pixel change a real difference (seed, negative) makes here: guards against vacuous
parity (observed differences are 1e-2 and more)."""
PROMPT = "a red cube on top of a blue sphere"
NEGATIVE = "green cube"
SEED = 1234
STEPS = 4
HEIGHT, WIDTH = 64, 64
GUIDANCE = 3.5
TRUE_CFG = 1.8


@pytest.fixture(scope="module")
def diffusers_pipe(tiny_flux_pipeline_dir: Path):
    from diffusers import FluxPipeline

    pipe = FluxPipeline.from_pretrained(tiny_flux_pipeline_dir, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def ours(tiny_flux_engine_dir: Path):
    from npc_rt.pipeline import load_engine

    return load_engine(tiny_flux_engine_dir)


def _params(negative_steps: int | None = None, **kw) -> GenerationParams:
    base = dict(steps=STEPS, height=HEIGHT, width=WIDTH, guidance=GUIDANCE, true_cfg=TRUE_CFG)
    base.update(kw)
    return GenerationParams(negative_steps=negative_steps, **base)


def _diffusers_images(
    pipe, prompt: str, negative: str | None, *, steps=STEPS, seed=SEED, h=HEIGHT, w=WIDTH
):
    kwargs = {}
    if negative is not None:
        kwargs = {"negative_prompt": negative, "true_cfg_scale": TRUE_CFG}
    out = pipe(
        prompt,
        num_inference_steps=steps,
        height=h,
        width=w,
        guidance_scale=GUIDANCE,
        generator=torch.Generator("cpu").manual_seed(seed),
        output_type="np",
        max_sequence_length=TINY_MAX_SEQUENCE_LENGTH,
        **kwargs,
    )
    return out.images


@torch.no_grad()
def reference_cutoff_loop(
    pipe, prompt: str, negative: str, negative_steps: int, *, seed=SEED, steps=STEPS
):
    """FluxPipeline's sampling written out over diffusers' own modules, with the negative (true
    CFG) applied only while ``i < negative_steps``: the NPC schedule diffusers has no switch for."""
    from diffusers.pipelines.flux.pipeline_flux import calculate_shift, retrieve_timesteps

    enc = {"max_sequence_length": TINY_MAX_SEQUENCE_LENGTH, "device": "cpu"}
    cond, cond_pooled, text_ids = pipe.encode_prompt(prompt=prompt, prompt_2=None, **enc)
    neg, neg_pooled, neg_text_ids = pipe.encode_prompt(prompt=negative, prompt_2=None, **enc)
    channels = pipe.transformer.config.in_channels // 4
    latents, image_ids = pipe.prepare_latents(
        1, channels, HEIGHT, WIDTH, cond.dtype, "cpu", torch.Generator("cpu").manual_seed(seed)
    )
    sched = pipe.scheduler
    cfg = sched.config
    mu = calculate_shift(
        latents.shape[1],
        cfg.base_image_seq_len,
        cfg.max_image_seq_len,
        cfg.base_shift,
        cfg.max_shift,
    )
    sigmas = np.linspace(1.0, 1 / steps, steps)
    timesteps, _ = retrieve_timesteps(sched, steps, "cpu", sigmas=sigmas, mu=mu)
    sched.set_begin_index(0)
    guidance = torch.full([1], GUIDANCE, dtype=torch.float32).expand(1)
    for i, t in enumerate(timesteps):
        timestep = t.expand(1).to(latents.dtype) / 1000
        common = {
            "hidden_states": latents,
            "timestep": timestep,
            "guidance": guidance,
            "img_ids": image_ids,
        }
        pred = pipe.transformer(
            encoder_hidden_states=cond,
            pooled_projections=cond_pooled,
            txt_ids=text_ids,
            return_dict=False,
            **common,
        )[0]
        if i < negative_steps:
            neg_pred = pipe.transformer(
                encoder_hidden_states=neg,
                pooled_projections=neg_pooled,
                txt_ids=neg_text_ids,
                return_dict=False,
                **common,
            )[0]
            pred = neg_pred + TRUE_CFG * (pred - neg_pred)
        latents = sched.step(pred, t, latents, return_dict=False)[0]
    latents = pipe._unpack_latents(latents, HEIGHT, WIDTH, pipe.vae_scale_factor)
    latents = latents / pipe.vae.config.scaling_factor + pipe.vae.config.shift_factor
    image = pipe.vae.decode(latents, return_dict=False)[0]
    return pipe.image_processor.postprocess(image, output_type="np")


# ----------------------------------------------------------------------------- the export check


def test_export_check_errors_are_within_the_bound_the_tolerance_assumes(ours) -> None:
    check = ours.engine.manifest["check"]
    assert check is not None
    for name in (flux.TRANSFORMER, flux.VAE_DECODER, flux.T5, flux.CLIP):
        entry = check["components"][name]
        assert entry["status"] == "ok", entry
        relative = entry["max_abs_error"] / max(1.0, entry["max_abs_reference"])
        assert relative <= COMPONENT_ERROR_BOUND, (name, entry)


# ----------------------------------------------------------------------------- parity


def test_no_negative_matches_diffusers(ours, diffusers_pipe) -> None:
    expected = _diffusers_images(diffusers_pipe, PROMPT, None)
    got = ours.sample(PROMPT, seed=SEED, negatives=(None,), params=_params()).images
    assert got.shape == expected.shape == (1, HEIGHT, WIDTH, 3)
    np.testing.assert_allclose(got, expected, atol=IMAGE_ATOL, rtol=0)
    # and the check is not vacuous: another seed is far away
    other = _diffusers_images(diffusers_pipe, PROMPT, None, seed=SEED + 1)
    assert np.abs(other - expected).max() > SIGNAL


def test_negative_on_all_steps_matches_diffusers_true_cfg(ours, diffusers_pipe) -> None:
    expected = _diffusers_images(diffusers_pipe, PROMPT, NEGATIVE)
    got = ours.sample(
        PROMPT, seed=SEED, negatives=(NEGATIVE,), params=_params(negative_steps=STEPS)
    ).images
    np.testing.assert_allclose(got, expected, atol=IMAGE_ATOL, rtol=0)
    without = _diffusers_images(diffusers_pipe, PROMPT, None)
    assert np.abs(without - expected).max() > SIGNAL  # the negative changes the image


def test_reference_loop_reproduces_diffusers(diffusers_pipe) -> None:
    """The hand-written reference equals FluxPipeline where FluxPipeline can express it."""
    full = reference_cutoff_loop(diffusers_pipe, PROMPT, NEGATIVE, STEPS)
    np.testing.assert_allclose(full, _diffusers_images(diffusers_pipe, PROMPT, NEGATIVE), atol=1e-6)
    none = reference_cutoff_loop(diffusers_pipe, PROMPT, NEGATIVE, 0)
    np.testing.assert_allclose(none, _diffusers_images(diffusers_pipe, PROMPT, None), atol=1e-6)


@pytest.mark.parametrize("negative_steps", [1, 2])
def test_negative_on_first_steps_matches_reference_loop(
    ours, diffusers_pipe, negative_steps: int
) -> None:
    expected = reference_cutoff_loop(diffusers_pipe, PROMPT, NEGATIVE, negative_steps)
    got = ours.sample(
        PROMPT, seed=SEED, negatives=(NEGATIVE,), params=_params(negative_steps=negative_steps)
    ).images
    np.testing.assert_allclose(got, expected, atol=IMAGE_ATOL, rtol=0)


def test_other_resolution_matches_diffusers(ours, diffusers_pipe) -> None:
    seed = SEED + 7
    expected = _diffusers_images(diffusers_pipe, PROMPT, None, h=96, w=128, steps=2, seed=seed)
    params = _params(steps=2, height=96, width=128)
    got = ours.sample(PROMPT, seed=seed, negatives=(None,), params=params).images
    assert got.shape == (1, 96, 128, 3)
    np.testing.assert_allclose(got, expected, atol=IMAGE_ATOL, rtol=0)


# ----------------------------------------------------------------------------- batching


def test_batched_candidates_equal_separate_runs(ours) -> None:
    negatives = (None, NEGATIVE, "blurry photo", "two spheres")
    params = _params(negative_steps=2)
    batched = ours.sample(PROMPT, seed=SEED, negatives=negatives, params=params).images
    assert batched.shape[0] == len(negatives)
    for k, neg in enumerate(negatives):
        alone = ours.sample(PROMPT, seed=SEED, negatives=(neg,), params=params).images[0]
        np.testing.assert_allclose(batched[k], alone, atol=BATCH_ATOL, rtol=0)
    # different negatives give different images
    assert np.abs(batched[1] - batched[0]).max() > SIGNAL


def test_batch_rows_follow_the_cutoff(ours) -> None:
    calls = _SpyBackend(ours.backend)
    pipe = _with_backend(ours, calls)
    pipe.sample(PROMPT, seed=SEED, negatives=(None, "a", "b"), params=_params(negative_steps=2))
    rows = [shape["hidden_states"][0] for name, shape in calls.calls if name == flux.TRANSFORMER]
    assert rows == [5, 5, 3, 3]  # 3 cond + 2 neg rows while negatives apply, 3 after


def test_more_candidates_than_one_batch_holds(ours) -> None:
    k = ours.max_candidates_per_batch + 1
    negatives = [None] * k
    images = ours.sample(PROMPT, seed=SEED, negatives=negatives, params=_params(steps=1)).images
    assert images.shape[0] == k
    np.testing.assert_allclose(images[-1], images[0], atol=BATCH_ATOL)


def test_generate_returns_uint8_images_per_negative(ours) -> None:
    images = ours.generate(
        PROMPT, seed=SEED, negatives=(None, NEGATIVE), params=_params(negative_steps=2)
    )
    assert [im.negative for im in images] == [None, NEGATIVE]
    for im in images:
        assert im.pixels.dtype == np.uint8 and im.pixels.shape == (HEIGHT, WIDTH, 3)
        assert im.seed == SEED and im.params.negative_steps == 2
        assert set(im.timings) == {"encode", "denoise", "decode"}


# ----------------------------------------------------------------------------- text cache


def test_prompt_is_encoded_once_across_attempts(ours) -> None:
    calls = _SpyBackend(ours.backend)
    pipe = _with_backend(ours, calls)
    params = _params(steps=1, negative_steps=1)
    for neg in ("first try", "second try", None):
        pipe.sample(PROMPT, seed=SEED, negatives=(neg,), params=params)
    t5_rows = sum(shape["input_ids"][0] for name, shape in calls.calls if name == flux.T5)
    assert t5_rows == 3  # the prompt once, each negative once
    assert pipe.text_cache.hits >= 2


def test_clear_text_cache_encodes_again(ours) -> None:
    calls = _SpyBackend(ours.backend)
    pipe = _with_backend(ours, calls)
    pipe.encode_texts([PROMPT])
    pipe.clear_text_cache()
    again = pipe.encode_texts([PROMPT])[0]
    assert sum(1 for name, _ in calls.calls if name == flux.T5) == 2
    np.testing.assert_array_equal(again.sequence, ours.encode_texts([PROMPT])[0].sequence)


def test_cached_embedding_equals_fresh(ours) -> None:
    from npc_rt.pipeline import Pipeline

    fresh = Pipeline(ours.engine, ours.backend)
    a = fresh.encode_texts([PROMPT])[0]
    b = fresh.encode_texts([PROMPT, "x"])[0]
    assert a is b


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("prompt", "negatives", "params", "error", "message"),
    [
        ("", (None,), {}, InvalidInputError, "prompt"),
        ("   ", (None,), {}, InvalidInputError, "prompt"),
        (PROMPT, ("",), {}, InvalidInputError, "negative"),
        (PROMPT, (), {}, InvalidInputError, "negatives"),
        (
            PROMPT,
            (NEGATIVE,),
            {"negative_steps": 5},
            InvalidInputError,
            "negative_steps 5 is larger than steps 4",
        ),
        (PROMPT, (None,), {"steps": 0}, InvalidInputError, "steps"),
        (PROMPT, (None,), {"height": 72}, ShapeError, "height 72 is not a multiple of 16"),
        (PROMPT, (None,), {"width": 520}, ShapeError, "width 520 is not a multiple"),
        (PROMPT, (None,), {"height": 512}, ShapeError, "outside the engine's exported range"),
        (PROMPT, (None,), {"width": 16}, ShapeError, "outside the engine's exported range"),
        (PROMPT, (None,), {"guidance": float("nan")}, NonFiniteError, "guidance"),
        (PROMPT, (NEGATIVE,), {"true_cfg": 0.5}, InvalidInputError, "true_cfg"),
    ],
)
def test_bad_input_fails_before_compute(ours, prompt, negatives, params, error, message) -> None:
    calls = _SpyBackend(ours.backend)
    pipe = _with_backend(ours, calls)
    with pytest.raises(error, match=message):
        pipe.generate(prompt, seed=SEED, negatives=negatives, params=_params(**params))
    assert calls.calls == []


def test_load_engine_errors(tmp_path: Path, tiny_flux_engine_dir: Path) -> None:
    import shutil

    from npc_rt.errors import ManifestVersionError
    from npc_rt.pipeline import load_engine

    with pytest.raises(EngineError, match="does not exist"):
        load_engine(tmp_path / "missing")
    copy = tmp_path / "engine"
    shutil.copytree(tiny_flux_engine_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(ManifestVersionError):
        load_engine(copy)
    (copy / "manifest.json").write_text(json.dumps({**manifest, "family": "imagen"}))
    with pytest.raises(EngineError, match="family 'imagen'"):
        load_engine(copy)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    (copy / "vae_decoder.onnx").unlink()
    with pytest.raises(EngineError, match="vae_decoder.onnx is missing"):
        load_engine(copy)


# ----------------------------------------------------------------------------- contract


def test_pipeline_satisfies_image_generator(ours, tiny_flux_engine_dir: Path) -> None:
    import hashlib

    assert isinstance(ours, ImageGenerator)
    assert ours.family == "flux"
    digest = hashlib.sha256((tiny_flux_engine_dir / "manifest.json").read_bytes()).hexdigest()
    assert ours.manifest_hash == digest
    assert (
        ours.max_candidates_per_batch == ours.engine.component("transformer").dims["batch"].max // 2
    )
    defaults = ours.default_params
    assert defaults.negative_steps == 3 and defaults.true_cfg == 1.8
    ours.config.check_size(defaults.height, defaults.width)  # defaults fit the exported profile


def test_scoring_encoder_matches_t5_with_mask(ours, diffusers_pipe) -> None:
    encoder = ours.scoring_encoder()
    assert isinstance(encoder, ScoringEncoder)
    batch = encoder.tokenizer.encode_batch(["a red cube", "two blue spheres on a table"])
    ids = np.asarray(batch.input_ids, dtype=np.int64)
    mask = np.asarray(batch.attention_mask, dtype=np.int64)
    assert mask.min() == 0  # the shorter text is padded
    got = encoder.encode(ids, mask)
    with torch.no_grad():
        expected = diffusers_pipe.text_encoder_2(
            input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)
        )[0].numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


# ----------------------------------------------------------------------------- FLUX pieces


def test_pack_unpack_match_diffusers_and_round_trip(diffusers_pipe) -> None:
    rng = np.random.default_rng(0)
    latents = rng.standard_normal((2, 16, 6, 10)).astype(np.float32)
    packed = flux.pack_latents(latents)
    expected = diffusers_pipe._pack_latents(torch.from_numpy(latents), 2, 16, 6, 10).numpy()
    np.testing.assert_array_equal(packed, expected)
    np.testing.assert_array_equal(flux.unpack_latents(packed, 6, 10), latents)
    ref_unpacked = diffusers_pipe._unpack_latents(torch.from_numpy(packed), 48, 80, 8).numpy()
    np.testing.assert_array_equal(flux.unpack_latents(packed, 6, 10), ref_unpacked)
    with pytest.raises(ShapeError):
        flux.pack_latents(np.zeros((1, 16, 5, 4), np.float32))
    with pytest.raises(ShapeError):
        flux.unpack_latents(packed, 8, 10)


def test_image_ids_match_diffusers(diffusers_pipe) -> None:
    expected = diffusers_pipe._prepare_latent_image_ids(1, 3, 5, "cpu", torch.float32).numpy()
    np.testing.assert_array_equal(flux.image_ids(3, 5), expected)


def test_initial_noise_matches_prepare_latents(ours, diffusers_pipe) -> None:
    expected, _ = diffusers_pipe.prepare_latents(
        1, 16, HEIGHT, WIDTH, torch.float32, "cpu", torch.Generator("cpu").manual_seed(SEED)
    )
    np.testing.assert_array_equal(ours.initial_noise(SEED, HEIGHT, WIDTH), expected.numpy())


# ----------------------------------------------------------------------------- CLI, no torch


def test_runtime_does_not_import_torch(tiny_flux_engine_dir: Path) -> None:
    code = f"""
import sys
import npc_rt, npc_rt.pipeline, npc_rt.engine, npc_rt.backends.ort, npc_rt.schedule
import npc_rt.guidance, npc_rt.images, npc_rt.families.flux, npc_rt.cli.generate
from npc_rt.pipeline import load_engine
from npc_rt.generator import GenerationParams
pipe = load_engine({str(tiny_flux_engine_dir)!r})
pipe.generate("a cat", seed=1, negatives=(None, "dog"),
              params=GenerationParams(steps=2, height=32, width=32, guidance=3.5, true_cfg=1.8, negative_steps=1))
heavy = sorted(m for m in ("torch", "diffusers", "transformers") if m in sys.modules)
assert not heavy, heavy
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.parametrize("latents", ["host", "device"])
def test_cli_generate_writes_png_with_parameters(
    ours, tiny_flux_engine_dir: Path, tmp_path: Path, latents: str
) -> None:
    from npc_rt.records import read_png_text

    png = tmp_path / "img.png"
    cmd = [
        sys.executable, "-m", "npc_rt", "generate", "--engine", str(tiny_flux_engine_dir),
        "--prompt", PROMPT, "--negative", NEGATIVE, "--negative-steps", "2", "--true-cfg", "1.8",
        "--seed", str(SEED), "--steps", str(STEPS), "--height", str(HEIGHT), "--width", str(WIDTH),
        "--guidance", str(GUIDANCE), "--out", str(png), "--latents", latents,
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    for stage in ("encode", "denoise", "decode", f"latents on the {latents}"):
        assert stage in out.stdout
    text = read_png_text(png)
    assert text["prompt"] == PROMPT and text["negative"] == NEGATIVE
    assert (
        text["seed"] == str(SEED) and text["negative_steps"] == "2" and text["steps"] == str(STEPS)
    )
    assert text["engine_manifest_sha256"] == ours.manifest_hash
    from PIL import Image

    pixels = np.asarray(Image.open(png).convert("RGB"))
    (expected,) = ours.generate(
        PROMPT, seed=SEED, negatives=(NEGATIVE,), params=_params(negative_steps=2)
    )
    assert np.abs(pixels.astype(int) - expected.pixels.astype(int)).max() <= 1


def test_cli_reports_bad_input(tiny_flux_engine_dir: Path, tmp_path: Path) -> None:
    cmd = [
        sys.executable, "-m", "npc_rt", "generate", "--engine", str(tiny_flux_engine_dir),
        "--prompt", PROMPT, "--height", "72", "--out", str(tmp_path / "x.png"),
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    assert "height 72 is not a multiple of 16" in out.stderr
    assert not (tmp_path / "x.png").exists()


# ----------------------------------------------------------------------------- helpers


class _SpyBackend:
    """Records (component, input shapes) of every run and delegates to a real backend."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls: list[tuple[str, dict]] = []
        self.name = "spy"

    def run(self, component, inputs):
        self.calls.append((component, {k: tuple(np.shape(v)) for k, v in inputs.items()}))
        return self.inner.run(component, inputs)

    def place(self, array):
        return array

    def close(self) -> None:
        pass


def _with_backend(ours, backend):
    from npc_rt.pipeline import Pipeline

    return Pipeline(
        ours.engine, backend, clip_tokenizer=ours.clip_tokenizer, t5_tokenizer=ours.t5_tokenizer
    )


def test_uint8_conversion_matches_diffusers() -> None:
    from diffusers.image_processor import VaeImageProcessor
    from npc_rt.images import to_uint8

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (2, 8, 8, 3)).astype(np.float32)
    images[0, 0, 0] = [0.0, 1.0, 0.5 / 255]  # edges and a rounding tie
    expected = np.stack([np.asarray(im) for im in VaeImageProcessor.numpy_to_pil(images)])
    np.testing.assert_array_equal(to_uint8(images), expected)
    with pytest.raises(ShapeError):
        to_uint8(np.zeros((4, 4)))
