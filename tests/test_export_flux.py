"""Exporting the tiny FLUX pipeline: manifest content, file hashes, ONNX IO, and ONNX-vs-torch parity.

Parity is checked against the diffusers/transformers modules called the way diffusers'
FluxPipeline calls them (not against our own wrappers), at batch sizes, resolutions and text
lengths other than the traced ones. Tolerance (fp32): max abs error <= 1e-4 x max(1, max |ref|);
ONNX Runtime and torch run the same float32 math with different kernels and summation orders,
which on this model differ by ~1e-6 (measured), so 1e-4 leaves margin while still failing on any
real graph error (wrong input, frozen shape, missing mask), which shows up at O(0.1-1).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from importlib import metadata
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from fixtures.tiny_flux import TINY_FLUX_EXPORT, TINY_MAX_SEQUENCE_LENGTH

FP32_TOL = 1e-4

COMPONENTS = ("text_encoder", "text_encoder_2", "transformer", "vae_decoder", "sampler_step")


@pytest.fixture(scope="module")
def manifest(tiny_flux_engine_dir: Path) -> dict:
    return json.loads((tiny_flux_engine_dir / "manifest.json").read_text())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _assert_close(actual: np.ndarray, reference: np.ndarray, tol: float = FP32_TOL) -> float:
    assert actual.shape == reference.shape
    error = float(np.abs(actual.astype(np.float64) - reference.astype(np.float64)).max())
    assert error <= tol * max(1.0, float(np.abs(reference).max())), error
    return error


# --------------------------------------------------------------------------- manifest


def test_manifest_identity_and_versions(manifest: dict) -> None:
    assert manifest["format"] == "npc-rt-engine"
    assert manifest["format_version"] == 1
    assert manifest["family"] == "flux"
    assert manifest["precision"] == "fp32"
    exporter = manifest["exporter"]
    assert exporter["opset"] == 18
    for package in ("torch", "diffusers", "transformers", "onnx", "onnxscript"):
        assert exporter[package] == metadata.version(package)
    assert set(manifest["components"]) == set(COMPONENTS)
    assert manifest["scoring_encoder"]["component"] == "text_encoder_2"
    assert manifest["scoring_encoder"]["tokenizer"] == "tokenizer_2"


def test_source_weights_hash_recomputed_independently(
    manifest: dict, tiny_flux_pipeline_dir: Path
) -> None:
    files = sorted(
        p.relative_to(tiny_flux_pipeline_dir).as_posix()
        for p in tiny_flux_pipeline_dir.rglob("*.safetensors")
    )
    assert [w["path"] for w in manifest["source"]["weights"]] == files
    lines = ""
    for entry, rel in zip(manifest["source"]["weights"], files, strict=True):
        path = tiny_flux_pipeline_dir / rel
        assert entry["sha256"] == _sha256(path)
        assert entry["bytes"] == path.stat().st_size
        lines += f"{_sha256(path)}  {rel}\n"
    assert manifest["source"]["weights_sha256"] == hashlib.sha256(lines.encode()).hexdigest()
    assert manifest["source"]["class_name"] == "FluxPipeline"


def test_every_listed_file_exists_with_its_hash(manifest: dict, tiny_flux_engine_dir: Path) -> None:
    for name, comp in manifest["components"].items():
        path = tiny_flux_engine_dir / comp["file"]
        assert comp["file"] == f"{name}.onnx"
        assert comp["sha256"] == _sha256(path)
        assert comp["bytes"] == path.stat().st_size
        assert comp["external_data"] == []  # the tiny model is far below the threshold
        assert comp["precision"] == "fp32"
    for tok in manifest["tokenizers"].values():
        assert tok["sha256"] == _sha256(tiny_flux_engine_dir / tok["file"])
    sched = manifest["scheduler"]
    assert sched["class_name"] == "FlowMatchEulerDiscreteScheduler"
    assert sched["sha256"] == _sha256(tiny_flux_engine_dir / sched["config_file"])


def test_scheduler_config_copied_verbatim(
    manifest: dict, tiny_flux_engine_dir: Path, tiny_flux_pipeline_dir: Path
) -> None:
    copied = tiny_flux_engine_dir / manifest["scheduler"]["config_file"]
    source = tiny_flux_pipeline_dir / "scheduler" / "scheduler_config.json"
    assert copied.read_bytes() == source.read_bytes()
    config = json.loads(copied.read_text())
    assert config["use_dynamic_shifting"] is True and config["shift"] == 3.0


def test_tokenizer_entries(manifest: dict, tiny_flux_engine_dir: Path) -> None:
    clip, t5 = manifest["tokenizers"]["tokenizer"], manifest["tokenizers"]["tokenizer_2"]
    assert (clip["preset"], clip["encoder"], clip["max_length"]) == ("clip-l", "text_encoder", 77)
    assert (clip["pad_id"], clip["bos_id"], clip["eos_id"]) == (49407, 49406, 49407)
    assert (t5["preset"], t5["encoder"]) == ("t5", "text_encoder_2")
    assert t5["max_length"] == TINY_MAX_SEQUENCE_LENGTH
    assert (t5["pad_id"], t5["bos_id"], t5["eos_id"]) == (0, None, 1)
    for tok in (clip, t5):
        json.loads((tiny_flux_engine_dir / tok["file"]).read_text())  # valid JSON


def test_converted_tokenizers_match_transformers(
    manifest: dict, tiny_flux_engine_dir: Path, tiny_flux_pipeline_dir: Path
) -> None:
    """The converted files tokenize like the source tokenizers (padding to max_length)."""
    import npc_rt
    from transformers import CLIPTokenizer, T5TokenizerFast

    texts = ["a photo of a red cat", "Two dogs, one blue ball and 3 apples."]
    pairs = (
        ("tokenizer", CLIPTokenizer.from_pretrained(tiny_flux_pipeline_dir / "tokenizer")),
        ("tokenizer_2", T5TokenizerFast.from_pretrained(tiny_flux_pipeline_dir / "tokenizer_2")),
    )
    for name, reference in pairs:
        entry = manifest["tokenizers"][name]
        ours = npc_rt.Tokenizer.from_file(
            tiny_flux_engine_dir / entry["file"],
            max_length=entry["max_length"],
            pad_id=entry["pad_id"],
        )
        ids = ours.encode_batch(texts).input_ids
        expected = reference(
            texts, padding="max_length", max_length=entry["max_length"], truncation=True
        ).input_ids
        np.testing.assert_array_equal(ids, np.array(expected))


def test_pipeline_constants(manifest: dict, tiny_flux_pipeline_dir: Path) -> None:
    vae = json.loads((tiny_flux_pipeline_dir / "vae" / "config.json").read_text())
    tr = json.loads((tiny_flux_pipeline_dir / "transformer" / "config.json").read_text())
    p = manifest["pipeline"]
    assert p["vae_scaling_factor"] == vae["scaling_factor"]
    assert p["vae_shift_factor"] == vae["shift_factor"]
    assert p["vae_scale_factor"] == 2 ** (len(vae["block_out_channels"]) - 1) == 8
    assert p["resolution_multiple"] == 16
    assert p["latent_channels"] == vae["latent_channels"] == 16
    assert p["in_channels"] == tr["in_channels"] == 64
    assert p["joint_attention_dim"] == tr["joint_attention_dim"]
    assert p["pooled_projection_dim"] == tr["pooled_projection_dim"]
    assert p["guidance_embeds"] is True
    assert p["max_sequence_length"] == TINY_MAX_SEQUENCE_LENGTH
    assert (p["default_steps"], p["default_guidance_scale"]) == (28, 3.5)
    assert (p["default_height"], p["default_width"]) == (1024, 1024)
    assert p["max_batch"] == TINY_FLUX_EXPORT["max_batch"]
    assert p["resolution"] == {
        "min": list(TINY_FLUX_EXPORT["min_size"]),
        "opt": list(TINY_FLUX_EXPORT["opt_size"]),
        "max": list(TINY_FLUX_EXPORT["max_size"]),
    }


def test_profiles_follow_dims_and_resolution(manifest: dict) -> None:
    comps = manifest["components"]
    for name, comp in comps.items():
        dims = comp["dims"]
        for rng in dims.values():
            assert 1 <= rng["min"] <= rng["opt"] <= rng["max"], name
        for which in ("min", "opt", "max"):
            shapes = comp["profiles"][which]
            assert list(shapes) == [i["name"] for i in comp["inputs"]]
            for spec in comp["inputs"]:
                expected = [a if isinstance(a, int) else dims[a][which] for a in spec["shape"]]
                assert shapes[spec["name"]] == expected, (name, which, spec["name"])
    res = manifest["pipeline"]["resolution"]
    seq = comps["transformer"]["dims"]["image_seq"]
    for which in ("min", "opt", "max"):
        h, w = res[which]
        assert seq[which] == (h // 16) * (w // 16)
        assert comps["vae_decoder"]["dims"]["latent_height"][which] == h // 8
        assert comps["vae_decoder"]["dims"]["latent_width"][which] == w // 8
    assert comps["transformer"]["dims"]["batch"] == {"min": 1, "opt": 2, "max": 16}
    assert comps["text_encoder_2"]["dims"]["text_length"]["max"] == TINY_MAX_SEQUENCE_LENGTH


def test_onnx_graph_io_matches_manifest(manifest: dict, tiny_flux_engine_dir: Path) -> None:
    names = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.INT64: "int64"}
    for comp in manifest["components"].values():
        model = onnx.load(str(tiny_flux_engine_dir / comp["file"]), load_external_data=False)
        for values, specs in (
            (model.graph.input, comp["inputs"]),
            (model.graph.output, comp["outputs"]),
        ):
            assert [v.name for v in values] == [s["name"] for s in specs]
            for value, spec in zip(values, specs, strict=True):
                tensor = value.type.tensor_type
                assert names[tensor.elem_type] == spec["dtype"]
                dims = [d.dim_param or d.dim_value for d in tensor.shape.dim]
                assert dims == spec["shape"], (comp["file"], spec["name"])


def test_check_section_records_small_errors(manifest: dict) -> None:
    check = manifest["check"]
    assert set(check["components"]) == set(COMPONENTS)
    for name, result in check["components"].items():
        assert result["status"] == "ok", name
        assert result["tolerance"] == 1e-3  # the exporter's fp32 default
        # the tiny model meets this file's stricter bound
        assert 0 <= result["max_abs_error"] <= FP32_TOL * max(1, result["max_abs_reference"])


# --------------------------------------------------------------------------- parity with diffusers


@pytest.fixture(scope="module")
def torch_modules(tiny_flux_pipeline_dir: Path) -> dict:
    from diffusers import AutoencoderKL, FluxTransformer2DModel
    from transformers import CLIPTextModel, T5EncoderModel

    root = tiny_flux_pipeline_dir
    return {
        "clip": CLIPTextModel.from_pretrained(root / "text_encoder").eval(),
        "t5": T5EncoderModel.from_pretrained(root / "text_encoder_2").eval(),
        "transformer": FluxTransformer2DModel.from_pretrained(root / "transformer").eval(),
        "vae": AutoencoderKL.from_pretrained(root / "vae").eval(),
    }


@pytest.mark.parametrize("batch", [1, 5])
def test_clip_pooled_matches_transformers(
    tiny_flux_engine_dir: Path, torch_modules: dict, batch: int
) -> None:
    gen = torch.Generator().manual_seed(batch)
    ids = torch.randint(0, 49408, (batch, 77), generator=gen)
    with torch.no_grad():
        reference = torch_modules["clip"](ids, output_hidden_states=False).pooler_output.numpy()
    (actual,) = _session(tiny_flux_engine_dir / "text_encoder.onnx").run(
        None, {"input_ids": ids.numpy()}
    )
    _assert_close(actual, reference)


@pytest.mark.parametrize(("batch", "length"), [(1, TINY_MAX_SEQUENCE_LENGTH), (4, 20)])
def test_t5_matches_transformers_unmasked_and_masked(
    tiny_flux_engine_dir: Path, torch_modules: dict, batch: int, length: int
) -> None:
    gen = torch.Generator().manual_seed(length)
    ids = torch.randint(0, 1000, (batch, length), generator=gen)
    session = _session(tiny_flux_engine_dir / "text_encoder_2.onnx")
    # All-ones mask == diffusers' FLUX call, which passes no mask at all.
    with torch.no_grad():
        unmasked = torch_modules["t5"](ids, output_hidden_states=False)[0].numpy()
    ones = np.ones((batch, length), dtype=np.int64)
    (actual,) = session.run(None, {"input_ids": ids.numpy(), "attention_mask": ones})
    _assert_close(actual, unmasked)
    # A real padding mask reaches the attention (the salient score relies on it).
    mask = torch.ones(batch, length, dtype=torch.int64)
    mask[:, length // 2 :] = 0
    with torch.no_grad():
        masked = torch_modules["t5"](ids, attention_mask=mask)[0].numpy()
    (actual_masked,) = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
    _assert_close(actual_masked, masked)
    assert np.abs(masked - unmasked).max() > 1e-3  # the mask changes the result


@pytest.mark.parametrize(
    ("batch", "height", "width", "text_length"),
    [(1, 48, 80, TINY_MAX_SEQUENCE_LENGTH), (5, 32, 32, 9), (16, 256, 256, 32)],
)
def test_transformer_matches_diffusers_call(
    tiny_flux_engine_dir: Path,
    torch_modules: dict,
    batch: int,
    height: int,
    width: int,
    text_length: int,
) -> None:
    from diffusers import FluxPipeline

    gen = torch.Generator().manual_seed(height * width + batch)
    h2, w2 = height // 16, width // 16
    latents = torch.randn(batch, h2 * w2, 64, generator=gen)
    prompt_embeds = torch.randn(batch, text_length, 32, generator=gen)
    pooled = torch.randn(batch, 32, generator=gen)
    t = torch.tensor(812.5)  # a scheduler timestep; diffusers passes t.expand(B) / 1000
    timestep = t.expand(batch).to(latents.dtype) / 1000
    guidance = torch.full([1], 3.5, dtype=torch.float32).expand(batch)
    img_ids = FluxPipeline._prepare_latent_image_ids(batch, h2, w2, "cpu", torch.float32)
    txt_ids = torch.zeros(text_length, 3)
    with torch.no_grad():
        reference = torch_modules["transformer"](
            hidden_states=latents,
            timestep=timestep,
            guidance=guidance,
            pooled_projections=pooled,
            encoder_hidden_states=prompt_embeds,
            txt_ids=txt_ids,
            img_ids=img_ids,
            return_dict=False,
        )[0].numpy()
    feed = {
        "hidden_states": latents.numpy(),
        "encoder_hidden_states": prompt_embeds.numpy(),
        "pooled_projections": pooled.numpy(),
        "timestep": timestep.numpy(),
        "img_ids": img_ids.numpy(),
        "txt_ids": txt_ids.numpy(),
        "guidance": guidance.contiguous().numpy(),
    }
    (actual,) = _session(tiny_flux_engine_dir / "transformer.onnx").run(None, feed)
    _assert_close(actual, reference)


@pytest.mark.parametrize(("batch", "height", "width"), [(1, 48, 80), (2, 256, 256)])
def test_vae_decoder_matches_diffusers_decode(
    tiny_flux_engine_dir: Path, torch_modules: dict, batch: int, height: int, width: int
) -> None:
    gen = torch.Generator().manual_seed(height + width)
    latents = torch.randn(batch, 16, height // 8, width // 8, generator=gen)
    with torch.no_grad():
        reference = torch_modules["vae"].decode(latents, return_dict=False)[0].numpy()
    (actual,) = _session(tiny_flux_engine_dir / "vae_decoder.onnx").run(
        None, {"latents": latents.numpy()}
    )
    assert actual.shape == (batch, 3, height, width)
    _assert_close(actual, reference)


# --------------------------------------------------------------------------- other export paths


def _single_component_planner(component: str):
    """The FLUX planner restricted to one component: exporter paths tested in seconds."""
    from npc_rt_export import exporter, flux

    def planner(source, options):
        plan = flux.plan(source, options)
        return replace(plan, contracts={component: plan.contracts[component]})

    assert exporter.PLANNERS["flux"] is flux.plan
    return planner


def test_external_data_written_listed_and_relocatable(
    tiny_flux_pipeline_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from npc_rt_export import ExportOptions, export_pipeline, exporter

    monkeypatch.setitem(exporter.PLANNERS, "flux", _single_component_planner("text_encoder_2"))
    out = tmp_path / "engine"
    options = ExportOptions(**{**TINY_FLUX_EXPORT, "external_data_threshold": 0})
    result = export_pipeline(tiny_flux_pipeline_dir, out, options)
    comp = result.manifest["components"]["text_encoder_2"]
    (side,) = comp["external_data"]
    assert side["file"] == "text_encoder_2.onnx.data"
    assert side["sha256"] == _sha256(out / side["file"])
    # The weights moved out of the graph: the side file holds about what the safetensors file
    # does, and whatever stays inline is a few small tensors (norm weights, shape constants).
    safetensors = tiny_flux_pipeline_dir / "text_encoder_2" / "model.safetensors"
    assert side["bytes"] > 0.9 * safetensors.stat().st_size
    model = onnx.load(str(out / comp["file"]), load_external_data=False)
    assert all(len(init.raw_data) <= 1024 for init in model.graph.initializer)
    locations = {
        entry.value
        for init in model.graph.initializer
        for entry in init.external_data
        if entry.key == "location"
    }
    assert locations == {"text_encoder_2.onnx.data"}  # bare name: the directory can move
    moved = tmp_path / "moved"
    out.rename(moved)
    ids = np.arange(10, dtype=np.int64).reshape(2, 5)
    mask = np.ones_like(ids)
    (actual,) = _session(moved / comp["file"]).run(None, {"input_ids": ids, "attention_mask": mask})
    assert result.checks["text_encoder_2"].status == "ok"
    from transformers import T5EncoderModel

    t5 = T5EncoderModel.from_pretrained(tiny_flux_pipeline_dir / "text_encoder_2").eval()
    with torch.no_grad():
        reference = t5(torch.from_numpy(ids))[0].numpy()
    _assert_close(actual, reference)


def test_failing_check_is_an_error_and_writes_no_manifest(
    tiny_flux_pipeline_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from npc_rt.errors import EngineError
    from npc_rt_export import ExportOptions, export_pipeline, exporter

    monkeypatch.setitem(exporter.PLANNERS, "flux", _single_component_planner("text_encoder_2"))
    out = tmp_path / "engine"
    # No real export is bit-exact (the T5 check row differs at ~1e-6), so a zero tolerance fails.
    options = ExportOptions(**TINY_FLUX_EXPORT, check_tolerance=0.0)
    with pytest.raises(EngineError, match="text_encoder_2: ONNX Runtime output differs"):
        export_pipeline(tiny_flux_pipeline_dir, out, options)
    assert not (out / "manifest.json").exists()
    assert (out / "text_encoder_2.onnx").exists()  # the files stay, unclaimed by a manifest


def test_cli_fp16_no_check_export_loads_in_onnxruntime(
    tiny_flux_pipeline_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from npc_rt.cli import main

    out = tmp_path / "engine16"
    argv = ["export", str(tiny_flux_pipeline_dir), "--out", str(out), "--precision", "fp16"]
    argv += ["--no-check", "--min-size", "32", "--opt-size", "64", "--max-size", "128"]
    argv += ["--max-batch", "4", "--max-sequence-length", "16"]
    assert main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["precision"] == "fp16"
    assert manifest["check"] is None
    assert manifest["pipeline"]["max_batch"] == 4
    assert manifest["components"]["transformer"]["dims"]["batch"]["max"] == 4
    for comp in manifest["components"].values():
        if comp["kind"] == "flow_euler_step":  # no weights: the latents' update stays float32
            assert comp["precision"] == "fp32"
            continue
        assert comp["precision"] == "fp16"
        model = onnx.load(str(out / comp["file"]))
        half = [i for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16]
        assert half, comp["file"]  # weights are stored in half precision
        for spec in comp["inputs"]:
            assert spec["dtype"] in ("float32", "int64")  # boundary stays float32
    # The fp16 graph runs on ORT's CPU provider and stays near the fp32 engine's output.
    ids = np.arange(32, dtype=np.int64).reshape(2, 16) % 1000
    mask = np.ones_like(ids)
    (half_out,) = _session(out / "text_encoder_2.onnx").run(
        None, {"input_ids": ids, "attention_mask": mask}
    )
    assert half_out.dtype == np.float32 and np.isfinite(half_out).all()


def test_bf16_transformer_export_is_valid_onnx_with_float32_io(
    tiny_flux_pipeline_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bf16 graphs pass ONNX's full checker; ORT's CPU provider has no bf16 MatMul kernel, so the
    check reports it skipped with ORT's reason (or, should a build have the kernels, runs it)."""
    from npc_rt_export import ExportOptions, export_pipeline, exporter

    monkeypatch.setitem(exporter.PLANNERS, "flux", _single_component_planner("transformer"))
    out = tmp_path / "engine"
    options = ExportOptions(**{**TINY_FLUX_EXPORT, "precision": "bf16"})
    result = export_pipeline(tiny_flux_pipeline_dir, out, options)  # runs onnx.checker (full)
    comp = result.manifest["components"]["transformer"]
    assert comp["precision"] == "bf16"
    model = onnx.load(str(out / comp["file"]))
    assert any(i.data_type == onnx.TensorProto.BFLOAT16 for i in model.graph.initializer)
    assert {v.type.tensor_type.elem_type for v in model.graph.input} == {onnx.TensorProto.FLOAT}
    check = result.checks["transformer"]
    if check.status == "skipped":
        assert "NOT_IMPLEMENTED" in check.reason
    else:
        assert check.status == "ok" and check.max_abs_error <= 0.1 * max(1, check.max_abs_reference)


def test_runtime_reader_accepts_the_engine(tiny_flux_engine_dir: Path) -> None:
    """Writer/reader agreement: npc_rt.engine opens what the exporter wrote, hashes included."""
    from npc_rt.engine import open_engine

    engine = open_engine(tiny_flux_engine_dir, verify_hashes=True)
    assert set(engine.components) == set(COMPONENTS)
    assert engine.component("transformer").check_inputs(
        {
            "hidden_states": (2, 16, 64),
            "encoder_hidden_states": (2, 32, 32),
            "pooled_projections": (2, 32),
            "timestep": (2,),
            "img_ids": (16, 3),
            "txt_ids": (32, 3),
            "guidance": (2,),
        }
    ) == {"batch": 2, "image_seq": 16, "text_length": 32}


@pytest.mark.parametrize("which", ["min", "max"])
def test_every_component_runs_at_its_profile_ends(
    manifest: dict, tiny_flux_engine_dir: Path, tiny_flux_pipeline_dir: Path, which: str
) -> None:
    """The declared ranges are real: each graph runs, and matches torch, at both profile ends."""
    from npc_rt_export import flux
    from npc_rt_export.source import open_source

    source = open_source(tiny_flux_pipeline_dir)
    plan = flux.plan(source, _tiny_options())
    gen = torch.Generator().manual_seed(7)
    for name, comp in manifest["components"].items():
        contract = plan.contracts[name]
        assert contract.profile(which) == comp["profiles"][which]
        sizes = {dim: rng[which] for dim, rng in comp["dims"].items()}
        inputs = plan.sample_inputs(contract, sizes, gen)
        assert [list(x.shape) for x in inputs] == list(comp["profiles"][which].values())
        with torch.no_grad():
            references = plan.load[name]()(*inputs)
        if isinstance(references, torch.Tensor):
            references = (references,)
        feed = {spec["name"]: x.numpy() for spec, x in zip(comp["inputs"], inputs, strict=True)}
        actuals = _session(tiny_flux_engine_dir / comp["file"]).run(None, feed)
        for actual, reference in zip(actuals, references, strict=True):
            _assert_close(actual, reference.numpy())


def _tiny_options():
    from npc_rt_export import ExportOptions

    return ExportOptions(**TINY_FLUX_EXPORT)


def test_schnell_style_transformer_without_guidance_input(
    tiny_flux_pipeline_dir: Path, tmp_path: Path
) -> None:
    """FLUX-schnell has no guidance embedding: its contract and graph have no guidance input."""
    from diffusers import FluxTransformer2DModel
    from npc_rt_export import flux
    from npc_rt_export.onnx_export import export_onnx
    from npc_rt_export.source import open_source

    constants = replace(
        flux.read_constants(open_source(tiny_flux_pipeline_dir)), guidance_embeds=False
    )
    contract = flux.contracts(constants, flux.resolve_profile(constants, _tiny_options()))[
        "transformer"
    ]
    assert "guidance" not in contract.input_names
    torch.manual_seed(3)
    model = FluxTransformer2DModel(
        in_channels=64,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        guidance_embeds=False,
        axes_dims_rope=(4, 6, 6),
    ).eval()
    wrapper = flux.FluxNoisePrediction(model, guidance_embeds=False)
    gen = torch.Generator().manual_seed(0)
    example = flux.sample_inputs(contract, constants, contract.trace_sizes, gen)
    exported = export_onnx(
        wrapper, contract, example, tmp_path, opset=18, external_data_threshold=10**9
    )
    sample = flux.sample_inputs(contract, constants, contract.check_sizes, gen)
    with torch.no_grad():
        reference = model(
            hidden_states=sample[0],
            encoder_hidden_states=sample[1],
            pooled_projections=sample[2],
            timestep=sample[3],
            img_ids=sample[4],
            txt_ids=sample[5],
            return_dict=False,
        )[0].numpy()
    session = _session(tmp_path / exported.onnx.path)
    assert [i.name for i in session.get_inputs()] == list(contract.input_names)
    feed = {name: x.numpy() for name, x in zip(contract.input_names, sample, strict=True)}
    (actual,) = session.run(None, feed)
    _assert_close(actual, reference)


def test_flux_contracts_with_single_size_ranges_export(
    tiny_flux_pipeline_dir: Path, tmp_path: Path
) -> None:
    """--max-batch 1 and min == opt == max resolution: every VAE dim is a single size."""
    from npc_rt_export import ExportOptions, flux
    from npc_rt_export.onnx_export import export_onnx
    from npc_rt_export.source import open_source

    source = open_source(tiny_flux_pipeline_dir)
    constants = flux.read_constants(source)
    options = ExportOptions(max_batch=1, min_size=(48, 64), opt_size=(48, 64), max_size=(48, 64))
    contracts = flux.contracts(constants, flux.resolve_profile(constants, options))
    assert contracts["transformer"].dims["image_seq"].max == 12
    vae = contracts["vae_decoder"]
    assert all(r.min == r.max for r in vae.dims.values())
    module = flux.loaders(source, constants, "fp32")["vae_decoder"]()
    gen = torch.Generator().manual_seed(0)
    example = flux.sample_inputs(vae, constants, vae.trace_sizes, gen)
    exported = export_onnx(module, vae, example, tmp_path, opset=18, external_data_threshold=10**9)
    session = _session(tmp_path / exported.onnx.path)
    assert session.get_inputs()[0].shape == [1, 16, 6, 8]
    assert session.get_outputs()[0].shape == [1, 3, 48, 64]
    with torch.no_grad():
        reference = module(*example).numpy()
    (actual,) = session.run(None, {"latents": example[0].numpy()})
    _assert_close(actual, reference)


def test_overwrite_replaces_an_engine(
    tiny_flux_pipeline_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from npc_rt.errors import InvalidInputError
    from npc_rt_export import ExportOptions, export_pipeline, exporter

    monkeypatch.setitem(exporter.PLANNERS, "flux", _single_component_planner("text_encoder_2"))
    out = tmp_path / "engine"
    first = export_pipeline(tiny_flux_pipeline_dir, out, ExportOptions(**TINY_FLUX_EXPORT))
    with pytest.raises(InvalidInputError, match="is not empty"):
        export_pipeline(tiny_flux_pipeline_dir, out, ExportOptions(**TINY_FLUX_EXPORT))
    options = ExportOptions(**{**TINY_FLUX_EXPORT, "max_batch": 4, "overwrite": True})
    second = export_pipeline(tiny_flux_pipeline_dir, out, options)
    written = json.loads((out / "manifest.json").read_text())
    assert written == second.manifest != first.manifest
    assert written["components"]["text_encoder_2"]["dims"]["batch"]["max"] == 4


def test_engine_files_carry_no_paths_of_the_exporting_machine(
    manifest: dict, tiny_flux_engine_dir: Path
) -> None:
    # torch's exporter records a Python stack trace per node; those name the checkout and the
    # virtualenv, would ship inside engines, and would make identical exports differ by location.
    import sys

    markers = {str(Path(__file__).resolve().parents[1]).encode(), sys.prefix.encode()}
    for component in manifest["components"].values():
        data = (tiny_flux_engine_dir / component["file"]).read_bytes()
        assert not [m for m in markers if m in data], component["file"]
        model = onnx.load(str(tiny_flux_engine_dir / component["file"]), load_external_data=False)
        keys = {p.key for node in model.graph.node for p in node.metadata_props}
        assert "pkg.torch.onnx.stack_trace" not in keys
