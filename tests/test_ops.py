"""Every registered op against its NumPy reference (f32 and f64) and its gradient against finite differences,
generated from the registry: adding an op means adding its samples."""

from __future__ import annotations

import numpy as np
import pytest

from dlc.ops import registry
from harness import check_forward, check_grad

# Internal ops checked through the gradient checks of the op whose rule uses them.
COVERED_BY_GRADIENTS = {"slice_grad", "layer_norm_grad", "dropout_mask_mul", "softmax_xent_grad",
                        "softmax_xent_soft_grad"}


def _cases(kind: str) -> list:
    cases = []
    for name, op in sorted(registry.all_ops().items()):
        if not op.is_primitive or op.samples is None:
            continue
        for dtype in (("f32", "f64") if kind == "forward" else ("f64",)):
            for k, sample in enumerate(op.samples(np.random.default_rng(0), dtype)):
                if kind == "grad" and (not op.differentiable or not sample.grad):
                    continue
                cases.append(pytest.param(name, k, dtype, id=f"{name}-{k}-{dtype}"))
    return cases


def _sample(name: str, k: int, dtype: str):
    return registry.get(name).samples(np.random.default_rng(0), dtype)[k]


@pytest.mark.parametrize("name,k,dtype", _cases("forward"))
def test_forward(name: str, k: int, dtype: str) -> None:
    s = _sample(name, k, dtype)
    check_forward(name, s.inputs, s.attrs, dtype)


@pytest.mark.parametrize("name,k,dtype", _cases("grad"))
def test_gradient(name: str, k: int, dtype: str) -> None:
    s = _sample(name, k, dtype)
    if s.kinks is not None and s.kinks(s.inputs):
        pytest.skip("sample straddles a kink")
    check_grad(name, s.inputs, s.attrs)


def test_every_op_is_complete() -> None:
    """Each primitive has a shape rule, a kernel (or is a view), samples with a reference, and a gradient rule
    unless it says it is not differentiable."""
    problems = []
    for name, op in registry.all_ops().items():
        if not op.is_primitive:
            if op.doc == "":
                problems.append(f"{name}: composite op without documentation")
            continue
        if op.infer is None:
            problems.append(f"{name}: no shape rule")
        if not op.view and op.kernel is None:
            problems.append(f"{name}: no kernel")
        if op.kernel == "ew" and op.emit is None:
            problems.append(f"{name}: elementwise op without an evaluator emit rule")
        if op.kernel not in (None, "ew") and op.lower is None:
            problems.append(f"{name}: kernel without a lowering")
        # Random draws have no reference of their own: test_random.py checks them against a NumPy copy of
        # the counter stream, for any seed and step.
        if (name not in COVERED_BY_GRADIENTS and not op.random and (op.samples is None or op.reference is None)
                and not op.mutates):
            problems.append(f"{name}: no samples/reference for the harness")
        if op.differentiable and op.grad is None:
            problems.append(f"{name}: differentiable but no gradient rule")
    assert not problems, "\n".join(problems)


def test_every_kernel_key_exists_in_cpp() -> None:
    from dlc import _core
    keys = set(_core.kernel_keys(0))
    missing = {op.kernel for op in registry.all_ops().values() if op.kernel} - keys
    assert not missing, f"ops name kernels the C++ library lacks: {missing}"
