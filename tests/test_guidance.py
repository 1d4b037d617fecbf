"""Guidance arithmetic and the cond/neg batch layout."""

from __future__ import annotations

import numpy as np
import pytest
from npc_rt.errors import InvalidInputError, ShapeError
from npc_rt.guidance import GuidanceLayout, negatives_apply, true_cfg


def test_true_cfg_formula_and_limits() -> None:
    rng = np.random.default_rng(0)
    cond = rng.standard_normal((2, 5, 4)).astype(np.float32)
    neg = rng.standard_normal((2, 5, 4)).astype(np.float32)
    out = true_cfg(cond, neg, 1.8)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, 1.8 * cond - 0.8 * neg, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(true_cfg(cond, neg, 1.0), cond, atol=1e-6)
    np.testing.assert_array_equal(true_cfg(cond, neg, 0.0), neg)


def test_true_cfg_bitwise_equals_torch() -> None:
    torch = pytest.importorskip("torch")
    gen = torch.Generator("cpu").manual_seed(1)
    cond = torch.randn(3, 7, 8, generator=gen)
    neg = torch.randn(3, 7, 8, generator=gen)
    expected = neg + 1.8 * (cond - neg)  # the expression in diffusers' FluxPipeline
    np.testing.assert_array_equal(true_cfg(cond.numpy(), neg.numpy(), 1.8), expected.numpy())


def test_true_cfg_rejects_shape_mismatch() -> None:
    with pytest.raises(ShapeError, match="shape"):
        true_cfg(np.zeros((1, 2)), np.zeros((2, 2)), 1.5)


@pytest.mark.parametrize(
    ("step", "n", "expected"), [(0, 3, True), (2, 3, True), (3, 3, False), (0, 0, False)]
)
def test_negatives_apply_before_cutoff_only(step: int, n: int, expected: bool) -> None:
    assert negatives_apply(step, n) is expected


def test_layout_rows_and_indices() -> None:
    layout = GuidanceLayout.for_negatives(["a", None, "b", "c"], 1.8)
    assert layout.num_candidates == 4
    assert layout.negative_candidates == (0, 2, 3)
    assert layout.rows(True) == 7 and layout.rows(False) == 4
    np.testing.assert_array_equal(layout.row_candidates(True), [0, 1, 2, 3, 0, 2, 3])
    np.testing.assert_array_equal(layout.row_candidates(False), [0, 1, 2, 3])


def test_layout_scale_one_drops_negative_rows() -> None:
    layout = GuidanceLayout.for_negatives(["a", "b"], 1.0)
    assert layout.rows(True) == 2


def test_layout_rejects_empty_negatives() -> None:
    with pytest.raises(InvalidInputError, match="negatives"):
        GuidanceLayout.for_negatives([], 1.8)


def test_combine_equals_per_candidate_guidance() -> None:
    rng = np.random.default_rng(1)
    layout = GuidanceLayout.for_negatives([None, "x", "y"], 2.5)
    output = rng.standard_normal((5, 6)).astype(np.float32)
    pred = layout.combine(output, 2.5, with_negatives=True)
    np.testing.assert_array_equal(pred[0], output[0])  # no negative: cond only
    np.testing.assert_array_equal(pred[1], true_cfg(output[1], output[3], 2.5))
    np.testing.assert_array_equal(pred[2], true_cfg(output[2], output[4], 2.5))
    after = layout.combine(output[:3], 2.5, with_negatives=False)
    np.testing.assert_array_equal(after, output[:3])


def test_combine_rejects_wrong_row_count() -> None:
    layout = GuidanceLayout.for_negatives(["x"], 1.8)
    with pytest.raises(ShapeError, match="rows"):
        layout.combine(np.zeros((1, 4), np.float32), 1.8, with_negatives=True)
