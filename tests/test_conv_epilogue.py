"""Convolution epilogues: a conv2d followed by bias, batch-norm scale and shift, activation and residual add
fuses into one kernel (fusion groups headed by conv2d_core, conv_cpu.cpp's ConvEpilogue) and computes what
the unfused graph computes, on the direct AVX-512 path and on im2col + GEMM, with merged spatial dimensions
and with a width-broadcast operand that keeps image rows, in inference and in a training step."""

from __future__ import annotations

import numpy as np
import pytest

import dlc

NETS = {
    # lenet's block: bias + relu (f32 5x5 convs run the direct kernels on AVX-512 CPUs)
    "bias_relu": ("input x: DT[N, 3, 12, 12]\n"
                  "output y = conv2d(x, 6, kernel_size=5, padding=2) |> relu\n"),
    # resnet's block in evaluation: batch norm folds into scale and shift, plus the shortcut and relu
    "bn_residual": ("input x: DT[N, 8, 9, 9]\n"
                    "h = conv2d(x, 8, kernel_size=3, padding=1, bias=false) |> batch_norm\n"
                    "output y = relu(h + x)\n"),
    # pointwise and grouped convolutions take im2col + GEMM
    "pointwise_gelu": "input x: DT[N, 8, 7, 5]\noutput y = conv2d(x, 12, kernel_size=1) |> gelu\n",
    "grouped_tanh": "input x: DT[N, 8, 7, 7]\noutput y = conv2d(x, 8, kernel_size=3, groups=2) |> tanh\n",
    # an operand broadcast along the width only: the epilogue cannot merge Ho and Wo, so it walks image rows
    "width_broadcast": ("input x: DT[N, 4, 6, 10]\nparam v: DT[10] = normal(std=1.0)\n"
                        "output y = sigmoid(conv2d(x, 5, kernel_size=3, padding=1) * v)\n"),
}


def _full_size_kernels(program: dlc.Program, binding: dict[str, int]) -> list[str]:
    """Kernel labels of the plan, without batch norm's [C]-sized scale and shift computation."""
    return [step.label for step in program.compile_plan(binding).steps if "batch_norm" not in step.label]


@pytest.mark.parametrize("dtype", ["f32", "f64"])
@pytest.mark.parametrize("name", sorted(NETS))
@pytest.mark.parametrize("block", [0, 8])
def test_fused_convolution_epilogue_matches_the_unfused_graph(name: str, dtype: str, block: int) -> None:
    """block 0: NCHW plans (conv_cpu.cpp's epilogue); 8: the blocked layout where the pass chooses it
    (conv_nchwc_cpu.cpp's epilogue on the register tile, reorders around it)."""
    source = NETS[name].replace("DT", dtype)
    fused, unfused = (dlc.compile(source=source, dtype=dtype, fuse=f, seed=3) for f in (True, False))
    fused.model.nchwc_block = block
    x = np.random.default_rng(1).standard_normal((3,) + tuple(fused.inputs["x"].shape[1:])).astype(
        np.float32 if dtype == "f32" else np.float64)
    fused.eval()
    unfused.eval()
    unfused.model.nchwc_block = 0
    kernels = _full_size_kernels(fused, {"N": 3})
    if block:
        convs = [k for k in kernels if k.startswith("conv2d")]
        # 2 groups of 4 filters would share a block of 8 lanes, and a 1x1 convolution of an NCHW input is a GEMM:
        # those stay NCHW
        head = "conv2d_core+" if name in ("grouped_tanh", "pointwise_gelu") else "conv2d_nchwc+"
        assert len(convs) == 1 and convs[0].startswith(head), kernels
    else:
        assert len(kernels) == 1 and kernels[0].startswith("conv2d_core+"), kernels  # one kernel does it all
    tol = {"f32": dict(rtol=2e-5, atol=2e-6), "f64": dict(rtol=1e-12, atol=1e-12)}[dtype]
    np.testing.assert_allclose(fused(x=x)["y"], unfused(x=x)["y"], **tol)
    np.testing.assert_array_equal(fused(x=x)["y"], fused(x=x)["y"])


def test_training_step_with_fused_convolutions_matches_unfused() -> None:
    """In training the convolution's output is also kept for the backward pass (a second stored output)."""
    source = ("input x: f32[N, 2, 8, 8]\ninput y: i32[N]\n"
              "c = conv2d(x, 4, kernel_size=3, padding=1) |> relu\n"
              "d = conv2d(c, 4, kernel_size=3, padding=1) |> tanh\n"
              "output logits = dense(flatten(d + c), 3)\n"
              "train {\n loss = cross_entropy(logits, y)\n optimizer = sgd(lr=0.1)\n}\n")
    rng = np.random.default_rng(2)
    batch = {"x": rng.standard_normal((5, 2, 8, 8)).astype(np.float32), "y": rng.integers(0, 3, 5).astype(np.int32)}
    fused, unfused = (dlc.compile(source=source, fuse=f, seed=4) for f in (True, False))
    for _ in range(3):
        a, b = fused.train_step(**batch), unfused.train_step(**batch)
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)
    for name, value in unfused.params.items():
        np.testing.assert_allclose(fused.params[name], value, rtol=1e-4, atol=1e-6)
