"""Unit tests of the export building blocks: contracts, options, hashing, manifest writing, check."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
import torch
from npc_rt.errors import EngineError, InvalidInputError
from npc_rt_export.check import check_component, validate_onnx
from npc_rt_export.contracts import ComponentContract, DimRange, TensorSpec, resolve_shape
from npc_rt_export.hashing import combined_sha256, digest_file
from npc_rt_export.manifest import write_manifest
from npc_rt_export.onnx_export import export_onnx, torch_dynamic_shapes
from npc_rt_export.options import ExportOptions, parse_size


def _toy_contract(**overrides) -> ComponentContract:
    fields = {
        "name": "toy",
        "kind": "toy_linear",
        "inputs": (
            TensorSpec("x", "float32", ("batch", "length", 4)),
            TensorSpec("bias", "float32", ("length", 4)),
        ),
        "outputs": (TensorSpec("y", "float32", ("batch", "length", 3)),),
        "dims": {"batch": DimRange(1, 2, 8), "length": DimRange(2, 5, 9)},
        "trace_sizes": {"batch": 2, "length": 5},
        "check_sizes": {"batch": 3, "length": 7},
    }
    fields.update(overrides)
    return ComponentContract(**fields)


class ToyLinear(torch.nn.Module):
    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.linear = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return self.linear(x + bias)


# --------------------------------------------------------------------------- contracts


def test_dim_range_requires_ordered_positive_sizes() -> None:
    assert DimRange(1, 1, 1).contains(1)
    for bad in ((0, 1, 2), (2, 1, 3), (1, 4, 3)):
        with pytest.raises(InvalidInputError, match="min <= opt <= max"):
            DimRange(*bad)


def test_contract_rejects_undeclared_dims_and_out_of_range_sizes() -> None:
    with pytest.raises(InvalidInputError, match="undeclared dimension 'width'"):
        _toy_contract(inputs=(TensorSpec("x", "float32", ("width",)),))
    with pytest.raises(InvalidInputError, match="output 'y' uses undeclared dimension '8\\*h'"):
        _toy_contract(outputs=(TensorSpec("y", "float32", ("8*h",)),))
    with pytest.raises(InvalidInputError, match="check size length=10 is outside"):
        _toy_contract(check_sizes={"length": 10})


def test_profiles_expand_dims_per_input() -> None:
    contract = _toy_contract()
    assert contract.profile("min") == {"x": [1, 2, 4], "bias": [2, 4]}
    assert contract.profile("opt") == {"x": [2, 5, 4], "bias": [5, 4]}
    assert contract.profile("max") == {"x": [8, 9, 4], "bias": [9, 4]}
    with pytest.raises(InvalidInputError, match="profile must be one of"):
        contract.profile("mid")
    entry = contract.to_manifest()
    assert json.loads(json.dumps(entry)) == entry  # JSON-ready
    assert entry["dims"]["length"] == {"min": 2, "opt": 5, "max": 9}
    assert entry["inputs"][0] == {"name": "x", "dtype": "float32", "shape": ["batch", "length", 4]}


def test_resolve_shape_handles_scaled_output_dims() -> None:
    assert resolve_shape(("batch", 3, "8*h", "8*w"), {"batch": 2, "h": 5, "w": 7}) == [2, 3, 40, 56]


def test_dynamic_shapes_share_one_dim_object_per_name() -> None:
    shapes = torch_dynamic_shapes(_toy_contract())
    assert set(shapes[0]) == {0, 1} and set(shapes[1]) == {0}
    assert shapes[0][1] is shapes[1][0]  # "length" is the same symbol in both inputs


# --------------------------------------------------------------------------- options


def test_parse_size() -> None:
    assert parse_size("512") == (512, 512)
    assert parse_size("512x768") == (512, 768)
    for bad in ("", "abc", "1x2x3", "12.5"):
        with pytest.raises(InvalidInputError, match="size must be H or HxW"):
            parse_size(bad)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"precision": "int8"}, "precision must be one of"),
        ({"max_batch": 0}, "max_batch must be at least 1"),
        ({"min_size": (0, 16)}, "min_size must be"),
        ({"max_sequence_length": 0}, "max_sequence_length must be at least 1"),
        ({"external_data_threshold": -1}, "external_data_threshold"),
        ({"check_tolerance": -0.1}, "check_tolerance must be >= 0"),
    ],
)
def test_export_options_validate(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        ExportOptions(**kwargs)


# --------------------------------------------------------------------------- hashing, manifest


def test_combined_hash_is_sha256sum_of_sha256sum_lines(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "a.safetensors").write_bytes(b"alpha")
    (tmp_path / "b" / "c.safetensors").write_bytes(os.urandom(3_000_000))  # several read chunks
    digests = [digest_file(p, tmp_path) for p in sorted(tmp_path.rglob("*.safetensors"))]
    assert [d.path for d in digests] == ["a.safetensors", "b/c.safetensors"]
    for d in digests:
        data = (tmp_path / d.path).read_bytes()
        assert d.sha256 == hashlib.sha256(data).hexdigest() and d.bytes == len(data)
    listing = "".join(f"{d.sha256}  {d.path}\n" for d in digests)
    assert combined_sha256(digests) == hashlib.sha256(listing.encode()).hexdigest()
    renamed = [digests[0], type(digests[1])("b/d.safetensors", digests[1].sha256, digests[1].bytes)]
    assert combined_sha256(renamed) != combined_sha256(digests)  # names count, not just bytes


def test_write_manifest_replaces_atomically_and_leaves_no_temp(tmp_path: Path) -> None:
    write_manifest(tmp_path, {"format_version": 0})
    path = write_manifest(tmp_path, {"format_version": 1, "text": "é"})
    assert json.loads(path.read_text(encoding="utf-8")) == {"format_version": 1, "text": "é"}
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


# --------------------------------------------------------------------------- export + check


@pytest.fixture(scope="module")
def toy_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    contract = _toy_contract()
    example = (torch.randn(2, 5, 4), torch.randn(5, 4))
    out = tmp_path_factory.mktemp("toy")
    exported = export_onnx(
        ToyLinear(0), contract, example, out, opset=18, external_data_threshold=10**9
    )
    assert exported.external_data == ()
    return out / exported.onnx.path


def test_check_passes_against_the_exported_module(toy_onnx: Path) -> None:
    contract = _toy_contract()
    validate_onnx(toy_onnx, "toy")
    inputs = (torch.randn(3, 7, 4), torch.randn(7, 4))  # not the traced 2 x 5
    result = check_component(ToyLinear(0), contract, toy_onnx, inputs, "fp32")
    assert result.status == "ok"
    assert result.max_abs_error <= 1e-5
    assert result.shapes == {"x": [3, 7, 4], "bias": [7, 4]}
    assert result.to_manifest()["tolerance"] == 1e-3
    strict = check_component(ToyLinear(0), contract, toy_onnx, inputs, "fp32", tolerance=1e-5)
    assert strict.tolerance == 1e-5


def test_check_fails_clearly_when_onnx_and_torch_disagree(toy_onnx: Path) -> None:
    inputs = (torch.randn(3, 7, 4), torch.randn(7, 4))
    with pytest.raises(EngineError, match=r"toy: ONNX Runtime output differs from torch by"):
        check_component(ToyLinear(1), _toy_contract(), toy_onnx, inputs, "fp32")


def test_exported_graph_carries_contract_names(toy_onnx: Path) -> None:
    import onnx

    model = onnx.load(str(toy_onnx))
    dims = {
        v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in (*model.graph.input, *model.graph.output)
    }
    assert dims == {"x": ["batch", "length", 4], "bias": ["length", 4], "y": ["batch", "length", 3]}


def test_single_size_dims_export_static(tmp_path: Path) -> None:
    """min == max (e.g. --max-batch 1, equal min/max sizes) cannot be a torch.export Dim; such a
    dimension is exported at its one size and the graph IO shows that size."""
    import onnxruntime as ort

    contract = _toy_contract(
        dims={"batch": DimRange(1, 2, 8), "length": DimRange(5, 5, 5)},
        check_sizes={"batch": 3, "length": 5},
    )
    shapes = torch_dynamic_shapes(contract)
    assert set(shapes[0]) == {0} and shapes[1] == {}
    example = (torch.randn(2, 5, 4), torch.randn(5, 4))
    exported = export_onnx(
        ToyLinear(0), contract, example, tmp_path, opset=18, external_data_threshold=10**9
    )
    session = ort.InferenceSession(str(tmp_path / exported.onnx.path))
    assert [i.shape for i in session.get_inputs()] == [["batch", 5, 4], [5, 4]]
    assert session.get_outputs()[0].shape == ["batch", 5, 3]
    inputs = (torch.randn(3, 5, 4), torch.randn(5, 4))
    result = check_component(ToyLinear(0), contract, tmp_path / exported.onnx.path, inputs, "fp32")
    assert result.status == "ok"


def test_flux_profile_defaults_follow_the_pipeline_and_given_sizes() -> None:
    from npc_rt_export import flux

    constants = flux.FluxConstants(
        vae_scaling_factor=0.3611,
        vae_shift_factor=0.1159,
        vae_scale_factor=8,
        latent_channels=16,
        in_channels=64,
        joint_attention_dim=4096,
        pooled_projection_dim=768,
        guidance_embeds=True,
        clip_hidden_size=768,
        clip_vocab_size=49408,
        clip_max_positions=77,
        t5_vocab_size=32128,
        t5_d_model=4096,
    )
    default = flux.resolve_profile(constants, ExportOptions())
    assert (default.min_size, default.opt_size, default.max_size) == (
        (256, 256),
        (1024, 1024),
        (1024, 1024),
    )
    assert default.max_sequence_length == 512 and default.max_batch == 16
    wide = flux.resolve_profile(constants, ExportOptions(opt_size=(1024, 1536)))
    assert wide.max_size == (1024, 1536)  # the default max grows to cover a given opt
    small = flux.resolve_profile(constants, ExportOptions(max_size=(512, 512)))
    assert small.opt_size == (512, 512)  # the default opt shrinks into a given max
    contracts = flux.contracts(constants, default)
    assert contracts["transformer"].dims["image_seq"] == DimRange(256, 4096, 4096)
    assert contracts["transformer"].input_names[-1] == "guidance"
    assert contracts["vae_decoder"].dims["latent_height"] == DimRange(32, 128, 128)
    assert contracts["text_encoder_2"].outputs[0].shape == ("batch", "text_length", 4096)


def test_default_max_size_never_undercuts_a_given_opt_size() -> None:
    from npc_rt_export.options import ExportOptions
    from npc_rt_export.profiles import resolve_image_profile

    options = ExportOptions(min_size=(64, 64), opt_size=(1536, 1536))
    profile = resolve_image_profile("SDXL", (1024, 1024), 32, options)
    assert profile.max_size == (1536, 1536) and profile.opt_size == (1536, 1536)
    profile = resolve_image_profile("SDXL", (1024, 1024), 32, ExportOptions(min_size=(64, 64)))
    assert profile.opt_size == (1024, 1024) and profile.max_size == (1024, 1024)
