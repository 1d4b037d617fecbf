"""Bad export input gets a clear npc_rt error naming what is wrong, before any model is exported."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from fixtures.tiny_flux import TINY_FLUX_EXPORT
from npc_rt.errors import InvalidInputError, NpcError
from npc_rt_export import ExportOptions, export_pipeline
from npc_rt_export.source import open_source


@pytest.fixture
def pipeline_copy(tiny_flux_pipeline_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny pipeline to break."""
    return Path(shutil.copytree(tiny_flux_pipeline_dir, tmp_path / "pipe"))


def _export(src: Path, out: Path, **overrides) -> None:
    export_pipeline(src, out, ExportOptions(**{**TINY_FLUX_EXPORT, **overrides}))


def test_missing_or_non_directory_src(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="not a directory"):
        _export(tmp_path / "nope", tmp_path / "out")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInputError, match="not a directory"):
        _export(tmp_path / "file", tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing created for a bad source


def test_folder_without_model_index(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    with pytest.raises(InvalidInputError, match="no model_index.json, so not a diffusers pipeline"):
        _export(tmp_path / "src", tmp_path / "out")


def test_unparsable_model_index(pipeline_copy: Path, tmp_path: Path) -> None:
    (pipeline_copy / "model_index.json").write_text("{not json")
    with pytest.raises(InvalidInputError, match="model_index.json: not valid JSON"):
        _export(pipeline_copy, tmp_path / "out")


def test_unsupported_pipeline_class(pipeline_copy: Path, tmp_path: Path) -> None:
    index_path = pipeline_copy / "model_index.json"
    index = json.loads(index_path.read_text())
    index["_class_name"] = "StableDiffusionPipeline"
    index_path.write_text(json.dumps(index))
    with pytest.raises(InvalidInputError, match="'StableDiffusionPipeline' is not supported"):
        _export(pipeline_copy, tmp_path / "out")


def test_missing_component_folder(pipeline_copy: Path, tmp_path: Path) -> None:
    shutil.rmtree(pipeline_copy / "transformer")
    with pytest.raises(InvalidInputError, match="component folder transformer/ is missing"):
        _export(pipeline_copy, tmp_path / "out")


def test_component_absent_from_index(pipeline_copy: Path, tmp_path: Path) -> None:
    index_path = pipeline_copy / "model_index.json"
    index = json.loads(index_path.read_text())
    index["text_encoder_2"] = [None, None]
    index_path.write_text(json.dumps(index))
    with pytest.raises(InvalidInputError, match="no 'text_encoder_2' component"):
        _export(pipeline_copy, tmp_path / "out")


def test_missing_tokenizer_source_fails_before_export(pipeline_copy: Path, tmp_path: Path) -> None:
    (pipeline_copy / "tokenizer_2" / "spiece.model").unlink()
    with pytest.raises(InvalidInputError, match=r"missing spiece.model \(T5 sentencepiece model\)"):
        _export(pipeline_copy, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_inconsistent_configs(pipeline_copy: Path, tmp_path: Path) -> None:
    config_path = pipeline_copy / "transformer" / "config.json"
    config = json.loads(config_path.read_text())
    config["in_channels"] = 32
    config_path.write_text(json.dumps(config))
    with pytest.raises(InvalidInputError, match="in_channels 32 is not 4 x the VAE's 16"):
        _export(pipeline_copy, tmp_path / "out")


def test_source_without_weights(pipeline_copy: Path, tmp_path: Path) -> None:
    for weights in pipeline_copy.rglob("*.safetensors"):
        weights.unlink()
    with pytest.raises(InvalidInputError, match="no weight files"):
        _export(pipeline_copy, tmp_path / "out")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"min_size": (40, 32)}, "min_size 40x32: FLUX heights and widths must be multiples of 16"),
        ({"opt_size": (64, 72)}, "opt_size 64x72"),
        ({"min_size": (128, 32), "opt_size": (64, 64)}, "height: need min <= opt <= max"),
        ({"max_sequence_length": 600}, "max_sequence_length 600 is over FLUX's limit of 512"),
    ],
)
def test_bad_profiles(
    tiny_flux_pipeline_dir: Path, tmp_path: Path, overrides: dict, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        _export(tiny_flux_pipeline_dir, tmp_path / "out", **overrides)


def test_non_empty_out_needs_overwrite(tiny_flux_pipeline_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    with pytest.raises(InvalidInputError, match="is not empty"):
        _export(tiny_flux_pipeline_dir, out)
    assert (out / "keep.txt").read_text() == "user data"
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InvalidInputError, match="exists and is not a directory"):
        _export(tiny_flux_pipeline_dir, tmp_path / "afile")


def test_open_source_reads_family_and_components(tiny_flux_pipeline_dir: Path) -> None:
    source = open_source(tiny_flux_pipeline_dir)
    assert (source.class_name, source.family) == ("FluxPipeline", "flux")
    assert source.components["transformer"] == ("diffusers", "FluxTransformer2DModel")
    assert "image_encoder" not in source.components  # [null, null] entries are absent parts


def test_cli_reports_bad_src_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from npc_rt.cli import main

    code = main(["export", str(tmp_path), "--out", str(tmp_path / "out")])
    assert code == 1
    err = capsys.readouterr().err
    assert "npc-rt export: error:" in err and "no model_index.json" in err


def test_cli_bad_size_argument(tiny_flux_pipeline_dir: Path, tmp_path: Path, capsys) -> None:
    from npc_rt.cli import main

    argv = ["export", str(tiny_flux_pipeline_dir), "--out", str(tmp_path / "o"), "--min-size", "a"]
    assert main(argv) == 1
    assert "size must be H or HxW" in capsys.readouterr().err


def test_cli_without_export_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from npc_rt.cli import export as export_cli

    monkeypatch.setitem(sys.modules, "npc_rt_export", None)  # import now fails
    with pytest.raises(NpcError, match=r"pip install \./export"):
        export_cli.load_exporter()


def test_bf16_plan_keeps_vae_decoder_float32(tiny_flux_pipeline_dir: Path) -> None:
    """ONNX Conv has no bfloat16 type (opset 18), so the VAE decoder stays float32 at bf16."""
    import torch
    from npc_rt_export import flux

    plan = flux.plan(
        open_source(tiny_flux_pipeline_dir),
        ExportOptions(**{**TINY_FLUX_EXPORT, "precision": "bf16"}),
    )
    assert flux.module_dtype(plan.load["vae_decoder"]()) == torch.float32
    assert flux.module_dtype(plan.load["transformer"]()) == torch.bfloat16
