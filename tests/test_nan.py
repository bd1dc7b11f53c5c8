"""NaN propagates through every op as IEEE arithmetic (and NumPy, and PyTorch) say: a NaN in an input is a NaN
in every output element that depends on it, never a plausible number. Regression: relu(NaN) was 0, so one NaN
sample gave a normal-looking loss while the weights turned to NaN. Driven from the registry, fused and not."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from dlc.ops import registry
from harness import _graph_for, as_dtype, run_graph

# dropout's reference is not a function of its inputs alone (the mask is drawn by the kernel).
_VALUE_FREE = {"dropout"}
# The upsample references multiply by a dense interpolation matrix, so 0 * NaN spreads NaN to pixels that do
# not read the NaN one; for these the NaNs must be a non-empty subset of the reference's.
_DENSE_REFERENCE = {"upsample", "upsample_grad"}


def _placeholder(name: str, a: np.ndarray) -> bool:
    """A 0-d gradient into a recurrent op's sequence output means 'none' (the sample's reverse_time case)."""
    return name.endswith("_seq_grad") and a.ndim == 0


def _cases() -> list:
    cases = []
    for name, op in sorted(registry.all_ops().items()):
        if not op.is_primitive or op.samples is None or op.reference is None or name in _VALUE_FREE:
            continue
        for k, sample in enumerate(op.samples(np.random.default_rng(0), "f64")):
            for i, a in enumerate(as_dtype(sample.inputs, "f64")):
                if a.dtype == np.float64 and a.size and not _placeholder(name, a):
                    cases.append(pytest.param(name, k, i, id=f"{name}-{k}-in{i}"))
    return cases


@pytest.mark.parametrize("fuse", [False, True], ids=["plain", "fused"])
@pytest.mark.parametrize("name,k,i", _cases())
def test_nan_propagates(name: str, k: int, i: int, fuse: bool) -> None:
    sample = registry.get(name).samples(np.random.default_rng(0), "f64")[k]
    arrays = as_dtype(sample.inputs, "f64")
    arrays[i].reshape(-1)[arrays[i].size // 2] = np.nan
    graph, _, _ = _graph_for(name, arrays, sample.attrs)
    got = run_graph(graph, arrays, fuse=fuse)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        expected = registry.get(name).reference(*[a.copy() for a in arrays], **sample.attrs)
    expected = list(expected) if isinstance(expected, tuple) else [expected]
    for j, exp in enumerate(expected):
        out, exp = got[f"out{j}"], np.asarray(exp)
        if not np.issubdtype(out.dtype, np.floating):
            continue
        if name in _DENSE_REFERENCE:
            assert np.isnan(out).any() and not (np.isnan(out) & ~np.isnan(exp)).any(), f"{name} output {j}"
            continue
        np.testing.assert_array_equal(np.isnan(out), np.isnan(exp), err_msg=f"{name} output {j}: NaN positions")


@pytest.mark.parametrize("op", ["relu", "maximum", "minimum", "max", "min", "clip_abs", "leaky_relu"])
def test_reference_itself_propagates(op: str) -> None:
    """The check above is only as good as the references: these are the ops most often written with a
    comparison that drops NaN (x > 0 ? x : 0), so their references are pinned to IEEE here."""
    ref = registry.get(op).reference
    x = np.array([1.0, np.nan, -2.0])
    with np.errstate(all="ignore"):
        args = {"maximum": (x, np.zeros(3)), "minimum": (x, np.zeros(3))}.get(op, (x,))
        attrs = {"clip_abs": {"value": 1.0}}.get(op, {})
        assert np.isnan(np.asarray(ref(*args, **attrs))).any(), op
