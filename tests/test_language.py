"""The .dlm language as a user sees it: blocks and their parameter scopes, sharing, repeat, pipes, imports,
explicit parameters and initializers, symbolic dimensions, and the strict checks on call inputs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import dlc

RNG = np.random.default_rng(1234)


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def dense_ref(p: dict[str, np.ndarray], name: str, x: np.ndarray, relu: bool = False) -> np.ndarray:
    y = x.astype(np.float64) @ p[f"{name}.weight"] + p[f"{name}.bias"]
    return np.maximum(y, 0) if relu else y


BLOCK = """
block mlp(x, hidden: int = 8) {
  h = dense(x, hidden, activation="relu")
  return dense(h, 4)
}
"""


def test_block_calls_get_separate_parameters() -> None:
    prog = dlc.compile(source="input x: f32[N, 5]\n" + BLOCK + "a = mlp(x)\nb = mlp(x, hidden=6)\noutput a, b\n")
    assert list(prog.params) == ["a.h.weight", "a.h.bias", "a.dense.weight", "a.dense.bias",
                                 "b.h.weight", "b.h.bias", "b.dense.weight", "b.dense.bias"]
    assert prog.params["b.h.weight"].shape == (5, 6)
    x = rand(3, 5)
    out = prog(x=x)
    p = prog.params
    for name in ("a", "b"):
        ref = dense_ref(p, f"{name}.dense", dense_ref(p, f"{name}.h", x, relu=True))
        np.testing.assert_allclose(out[name], ref, rtol=1e-5, atol=1e-5)
    assert not np.allclose(out["a"], out["b"])


def test_explicit_layer_name() -> None:
    prog = dlc.compile(source='input x: f32[2, 3]\ny = relu(dense(x, 4, name="enc")) + 1\noutput y\n')
    assert list(prog.params) == ["enc.weight", "enc.bias"]


def test_statement_with_several_layers_numbers_them() -> None:
    prog = dlc.compile(source="input x: f32[2, 3]\ny = dense(dense(x, 4), 5)\noutput y\n")
    assert sorted(prog.params) == ["y.dense.bias", "y.dense.weight", "y.dense_1.bias", "y.dense_1.weight"]


def test_layer_share_uses_one_set() -> None:
    prog = dlc.compile(source='input x: f32[2, 4]\na = dense(x, 4)\nb = dense(a, 4, share="a")\noutput b\n')
    assert list(prog.params) == ["a.weight", "a.bias"]
    x = rand(2, 4)
    p = prog.params
    np.testing.assert_allclose(prog(x=x)["b"], dense_ref(p, "a", dense_ref(p, "a", x)), rtol=1e-5, atol=1e-5)


def test_block_share_uses_one_set() -> None:
    prog = dlc.compile(source="input x: f32[N, 5]\n" + BLOCK + 'a = mlp(x)\nb = mlp(x, share="a")\noutput a, b\n')
    assert list(prog.params) == ["a.h.weight", "a.h.bias", "a.dense.weight", "a.dense.bias"]
    out = prog(x=rand(2, 5))
    np.testing.assert_array_equal(out["a"], out["b"])


def test_repeat_names_each_copy() -> None:
    prog = dlc.compile(source="input x: f32[N, 5]\n" + BLOCK.replace("dense(h, 4)", "dense(h, 5)")
                       + "h = x |> repeat 3 mlp(hidden=7)\nk = repeat 2 dense(x, 5)\noutput h, k\n")
    names = list(prog.params)
    assert names[:4] == ["h.0.h.weight", "h.0.h.bias", "h.0.dense.weight", "h.0.dense.bias"]
    assert {n.split(".")[1] for n in names if n.startswith("h.")} == {"0", "1", "2"}
    assert names[-4:] == ["k.0.weight", "k.0.bias", "k.1.weight", "k.1.bias"]
    x = rand(2, 5)
    p = prog.params
    ref = x
    for i in range(3):
        ref = dense_ref(p, f"h.{i}.dense", dense_ref(p, f"h.{i}.h", ref, relu=True))
    np.testing.assert_allclose(prog(x=x)["h"], ref, rtol=1e-4, atol=1e-5)


def test_pipes_and_several_outputs() -> None:
    prog = dlc.compile(source="input x: f32[2, 3]\na = x |> relu |> mul_scalar(value=2.0)\n"
                       "b = x |> softmax(axis=-1)\noutput a, b, c = a + b\n")
    assert list(prog.outputs) == ["a", "b", "c"]
    x = rand(2, 3)
    out = prog(x=x)
    e = np.exp(x - x.max(-1, keepdims=True))
    np.testing.assert_allclose(out["a"], np.maximum(x, 0) * 2, rtol=1e-6)
    np.testing.assert_allclose(out["b"], e / e.sum(-1, keepdims=True), rtol=1e-5)
    np.testing.assert_allclose(out["c"], out["a"] + out["b"], rtol=1e-6)


def test_tuple_assignment_from_block() -> None:
    prog = dlc.compile(source="input x: f32[4]\nblock two(t) {\n  return relu(t), neg(t)\n}\n"
                       "p, q = two(x)\noutput p, q\n")
    x = rand(4)
    out = prog(x=x)
    np.testing.assert_array_equal(out["p"], np.maximum(x, 0))
    np.testing.assert_array_equal(out["q"], -x)


def test_numbers_and_tensors() -> None:
    prog = dlc.compile(source="input x: f32[3]\nblock f(t, k: int) {\n  return t * (k * 2) + 1 - 2 / t\n}\n"
                       "y = f(x, 3) ** 2\noutput y\n")
    x = np.array([0.5, 1.0, 2.0], np.float32)
    np.testing.assert_allclose(prog(x=x)["y"], (x * 6 + 1 - 2 / x) ** 2, rtol=1e-5)


def test_import_as_namespace_and_from_import(tmp_path: Path) -> None:
    (tmp_path / "lib.dlm").write_text(BLOCK)
    (tmp_path / "main.dlm").write_text('import "lib.dlm" as lib\nfrom "lib.dlm" import mlp\n'
                                       "input x: f32[N, 5]\na = lib.mlp(x)\nb = mlp(x, 3)\noutput a, b\n")
    prog = dlc.compile(tmp_path / "main.dlm")
    assert "a.h.weight" in prog.params and prog.params["b.h.weight"].shape == (5, 3)
    assert prog(x=rand(2, 5))["b"].shape == (2, 4)


def test_import_without_alias_uses_file_stem(tmp_path: Path) -> None:
    (tmp_path / "layers.dlm").write_text(BLOCK)
    (tmp_path / "main.dlm").write_text('import "layers.dlm"\ninput x: f32[2, 5]\ny = layers.mlp(x)\noutput y\n')
    assert dlc.compile(tmp_path / "main.dlm").outputs["y"] == dlc.TensorSpec("f32", (2, 4))


def test_explicit_param() -> None:
    prog = dlc.compile(source="input x: f32[N, 784]\nparam W: f32[784, 10] = normal(std=0.02)\n"
                       "param b: f32[10] = 0.5\ny = x @ W + b\noutput y\n")
    w = prog.params["W"]
    assert w.shape == (784, 10) and w.dtype == np.float32
    assert abs(w.std() - 0.02) < 0.002
    np.testing.assert_array_equal(prog.params["b"], np.full(10, 0.5, np.float32))
    x = rand(2, 784)
    np.testing.assert_allclose(prog(x=x)["y"], x.astype(np.float64) @ w + 0.5, rtol=1e-4, atol=1e-5)


# ---- initializers ----

def init_of(spec: str, shape: str = "400, 300", seed: int = 0) -> np.ndarray:
    prog = dlc.compile(source=f"input x: f32[2, 4]\nparam W: f32[{shape}] = {spec}\noutput x\n", seed=seed)
    return prog.params["W"].astype(np.float64)


FAN_IN, FAN_OUT = 400, 300


@pytest.mark.parametrize("spec,mean,std", [
    ("normal(mean=1.0, std=0.5)", 1.0, 0.5),
    ("uniform(low=-2, high=3)", 0.5, 5 / math.sqrt(12)),
    ("xavier_uniform", 0.0, math.sqrt(2 / (FAN_IN + FAN_OUT))),
    ("glorot_uniform", 0.0, math.sqrt(2 / (FAN_IN + FAN_OUT))),
    ("xavier_normal", 0.0, math.sqrt(2 / (FAN_IN + FAN_OUT))),
    ("he_uniform", 0.0, math.sqrt(2 / FAN_IN)),
    ("he_normal", 0.0, math.sqrt(2 / FAN_IN)),
    ("kaiming_normal(gain=1.0)", 0.0, math.sqrt(1 / FAN_IN)),
])
def test_random_initializer_statistics(spec: str, mean: float, std: float) -> None:
    w = init_of(spec)
    assert abs(w.mean() - mean) < 0.02 * max(std, 1.0)
    assert abs(w.std() - std) < 0.02 * std


@pytest.mark.parametrize("spec,value", [("zeros", 0.0), ("ones", 1.0), ("constant(value=0.25)", 0.25),
                                        ("-1.5", -1.5)])
def test_constant_initializers_are_exact(spec: str, value: float) -> None:
    np.testing.assert_array_equal(init_of(spec, "3, 4"), np.full((3, 4), value))


def test_uniform_bounds() -> None:
    w = init_of("uniform(low=-0.1, high=0.2)")
    assert w.min() >= -0.1 and w.max() < 0.2


def test_seeding() -> None:
    np.testing.assert_array_equal(init_of("normal", seed=7), init_of("normal", seed=7))
    assert not np.array_equal(init_of("normal", seed=7), init_of("normal", seed=8))


def test_adding_a_layer_keeps_other_inits() -> None:
    one = dlc.compile(source="input x: f32[2, 4]\nb = dense(x, 8)\noutput b\n")
    two = dlc.compile(source="input x: f32[2, 4]\na = dense(x, 6)\nb = dense(x, 8)\noutput a, b\n")
    np.testing.assert_array_equal(one.params["b.weight"], two.params["b.weight"])
    assert not np.array_equal(two.params["a.weight"][:, :6], two.params["b.weight"][:, :6])


def test_layer_initializer_override() -> None:
    prog = dlc.compile(source='input x: f32[2, 4]\nb = dense(x, 8, init="ones", bias_init=0.5)\noutput b\n')
    np.testing.assert_array_equal(prog.params["b.weight"], np.ones((4, 8), np.float32))
    np.testing.assert_array_equal(prog.params["b.bias"], np.full(8, 0.5, np.float32))


# ---- symbolic dimensions and input checks ----

def test_symbolic_dims_one_plan_per_binding() -> None:
    prog = dlc.compile(source="input x: f32[N, 6]\ny = dense(x, 3)\noutput y\n")
    assert prog.inputs["x"] == dlc.TensorSpec("f32", ("N", 6))
    for n in (4, 7, 4):
        x = rand(n, 6)
        out = prog(x=x)["y"]
        assert out.shape == (n, 3)
        np.testing.assert_allclose(out, dense_ref(prog.params, "y", x), rtol=1e-5, atol=1e-5)
    assert prog.compile_plan({"N": 4}) is prog.compile_plan({"N": 4})
    assert prog.compile_plan({"N": 4}) is not prog.compile_plan({"N": 7})


def test_dims_fixed_at_compile_time() -> None:
    prog = dlc.compile(source="input x: f32[N, 6]\ny = relu(x)\noutput y\n", dims={"N": 2})
    assert prog.inputs["x"].shape == (2, 6)
    with pytest.raises(ValueError, match=r"input 'x'.*\[2, 6\].*\[3, 6\]"):
        prog(x=rand(3, 6))


def test_shared_symbol_must_agree() -> None:
    prog = dlc.compile(source="input a: f32[N, 2]\ninput b: f32[N, 2]\ny = a + b\noutput y\n")
    with pytest.raises(ValueError, match="input 'b'.*N.*bound to 3"):
        prog(a=rand(3, 2), b=rand(4, 2))


@pytest.mark.parametrize("inputs,pattern", [
    ({"x": rand(2, 6), "z": rand(2, 6)}, r"unknown input 'z' \(the model takes: x\)"),
    ({}, r"missing input 'x' \(f32\[N, 6\]\)"),
    ({"x": rand(2, 6).astype(np.int32)}, r"input 'x': expected dtype f32 \(float32\), got int32"),
    ({"x": rand(6)}, r"input 'x': expected rank 2 \(f32\[N, 6\]\), got an array of shape \(6,\)"),
    ({"x": rand(2, 5)}, r"input 'x': expected shape \[2, 6\] \(f32\[N, 6\]\), got \[2, 5\]"),
])
def test_input_errors_name_the_input(inputs: dict[str, np.ndarray], pattern: str) -> None:
    prog = dlc.compile(source="input x: f32[N, 6]\ny = relu(x)\noutput y\n")
    with pytest.raises(ValueError, match=pattern):
        prog(**inputs)


def test_f64_mode() -> None:
    prog = dlc.compile(source="input x: f32[2, 3]\ny = dense(x, 2)\noutput y\n", dtype="f64")
    assert prog.inputs["x"].dtype == "f64" and prog.params["y.weight"].dtype == np.float64
    x = RNG.standard_normal((2, 3))
    np.testing.assert_allclose(prog(x=x)["y"], dense_ref(prog.params, "y", x), rtol=1e-12)


def test_f64_mode_covers_cast() -> None:
    prog = dlc.compile(source='input x: f32[3]\ninput k: i32[3]\ny = x * cast(k, "f32")\noutput y\n', dtype="f64")
    assert prog.outputs["y"].dtype == "f64"
