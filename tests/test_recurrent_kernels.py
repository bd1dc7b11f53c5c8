"""The recurrent kernels' paths (csrc/kernels/recurrent/): the per-step product on each GEMM kernel path (the
AVX-512 step kernel, the GEMM's AVX2 and scalar paths), the two thread splits (batch slices for the whole
sequence; unit ranges of each step when there are fewer rows than threads, as at batch 1), forward and backward,
against the float64 references of dlc.ops.recurrent with the same bits on 1 and 2 threads; and w_ih / w_hh kept
packed by a plan across calls, repacked only when their version moves, never served stale after a write the
plan is told of (a training step included)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

import dlc
from dlc import _core
from dlc.ops.recurrent import CELLS, REFERENCES, _seq_inputs
from harness import _graph_for, run_graph
from test_runtime import GEMM_ISAS, forced_gemm_isa
from test_sequence import _finite_difference_check, recurrent_ref

ARENA, PERSISTENT, INPUT = 0, 1, 2
F32 = 0


@contextmanager
def threads_on_any_work(n: int) -> Iterator[None]:
    """n threads, given to every loop and plan however small (the cost model's test hooks), so small sequences
    take the split paths: batch slices from 2 rows, unit ranges below."""
    before = dlc.get_num_threads()
    dlc.set_num_threads(n)
    _core.set_work_per_thread_scale(0.0)
    _core.set_inline_plan_ns(0.0)
    try:
        yield
    finally:
        _core.set_inline_plan_ns(-1.0)
        _core.set_work_per_thread_scale(1.0)
        dlc.set_num_threads(before)


def _run_op(op: str, arrays: list[np.ndarray], attrs: dict, n_out: int) -> list[np.ndarray]:
    res = run_graph(_graph_for(op, arrays, attrs)[0], arrays)
    return [res[f"out{i}"] for i in range(n_out)]


def _cases(kind: str, batch: int, hid: int, reverse: bool, relu: bool = False):
    """(op, float64 inputs, float64 reference outputs) of the forward and the backward kernel."""
    rng = np.random.default_rng(batch * 100 + hid)
    cell, (fwd_ref, grad_ref) = CELLS[kind], REFERENCES[kind]
    attrs = {"reverse_time": reverse, **({"activation": "relu"} if relu else {})}
    ins = _seq_inputs(kind, rng, "f64", batch, 6, 5, hid)
    ins[2] /= np.sqrt(hid)  # w_hh at its usual init scale
    outs = fwd_ref(*ins, **attrs)
    g_outs = [rng.uniform(-1, 1, o.shape) for o in outs[:1 + cell.states]]
    grad_ins = [*ins[:3], *ins[3 + cell.biases:], outs[0], *outs[1 + cell.states:], *g_outs]
    return attrs, [(f"{kind}_seq", ins, outs), (f"{kind}_seq_grad", grad_ins, grad_ref(*grad_ins, **attrs))]


# Hidden size 70 makes three 32-unit panels, the last one ragged, so two threads split the units 32 + 38; batch
# 1 takes the unit split on two threads, batch 3 the batch split (1 + 2 rows).
@pytest.mark.parametrize("isa", GEMM_ISAS)
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("kind,reverse,relu", [("lstm", False, False), ("lstm", True, False), ("gru", False, False),
                                               ("gru", True, False), ("rnn", True, False), ("rnn", False, True)])
def test_every_path_and_split_matches_the_references(isa: str, batch: int, kind: str, reverse: bool,
                                                     relu: bool) -> None:
    attrs, cases = _cases(kind, batch, 70, reverse, relu)
    with forced_gemm_isa(isa):
        for op, arrays, ref in cases:
            f32 = [a.astype(np.float32) for a in arrays]
            got = []
            for n in (1, 2):
                with threads_on_any_work(n):
                    got.append(_run_op(op, f32, attrs, len(ref)))
                    f64 = _run_op(op, arrays, attrs, len(ref))
                for k, (g, r) in enumerate(zip(f64, ref)):
                    np.testing.assert_allclose(g, r, rtol=1e-11, atol=1e-12, err_msg=f"{op} f64 {k} threads={n}")
            for k, (one, two, r) in enumerate(zip(*got, ref)):
                np.testing.assert_allclose(one, r, rtol=0, atol=1e-4 * max(1.0, np.abs(r).max()), err_msg=f"{op} {k}")
                np.testing.assert_array_equal(one, two, err_msg=f"{op} {k}: 1 and 2 threads differ")
            again = _run_op(op, f32, attrs, len(ref))  # run to run, on the default threads
            for k, (a, b) in enumerate(zip(again, _run_op(op, f32, attrs, len(ref)))):
                np.testing.assert_array_equal(a, b, err_msg=f"{op} {k} run to run")


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_batch_one_gradients_by_finite_differences_on_two_threads(kind: str) -> None:
    """Stacked, bidirectional, batch 1: every step's product and its backward split by units."""
    prog = dlc.compile(source=f"input x: f32[1, 4, 3]\ninput r: f32[1, 4, 80]\nh = {kind}(x, 40, layers=2, "
                       "bidirectional=true)\noutput h\ntrain { loss = sum(h * r) }\n", dtype="f64")
    rng = np.random.default_rng(3)
    with threads_on_any_work(2):
        _finite_difference_check(prog, {"x": rng.standard_normal((1, 4, 3)), "r": rng.standard_normal((1, 4, 80))},
                                 per_param=2)


def _lstm_plan(batch: int, time: int, width: int, hid: int, params: list[np.ndarray],
               versions: _core.ParamVersions) -> tuple[_core.Plan, list[tuple[int, ...]]]:
    """lstm_seq with x, h0, c0 as inputs and w_ih, w_hh, b as persistent buffers 0-2, as the lowering builds it."""
    shapes = [(batch, time, hid), (batch, hid), (batch, hid), (batch, time, 4 * hid), (batch, time, hid)]
    offsets = np.cumsum([0] + [-(-int(np.prod(s)) * 4 // 64) * 64 for s in shapes])
    plan = _core.Plan(int(offsets[-1]))
    x = plan.add_slot(INPUT, 0, F32, [batch, time, width])
    h0, c0 = (plan.add_slot(INPUT, i, F32, [batch, hid]) for i in (1, 2))
    w = [plan.add_slot(PERSISTENT, i, F32, list(p.shape)) for i, p in enumerate(params)]
    outs = [plan.add_slot(ARENA, int(o), F32, list(s)) for o, s in zip(offsets, shapes)]
    plan.add_step("lstm_seq", "lstm", [x, *w, h0, c0], outs, [0], [], -1)
    plan.set_num_inputs(3)
    plan.set_outputs(outs[:3])
    plan.set_persistent(params)
    plan.set_param_versions(versions)
    plan.set_weight_packing(True)
    return plan, shapes[:3]


@pytest.mark.parametrize("isa", GEMM_ISAS)
@pytest.mark.parametrize("batch", [1, 16])
def test_weights_kept_packed_and_repacked_only_when_their_version_moves(isa: str, batch: int) -> None:
    time, width, hid = 20, 24, 64
    rng = np.random.default_rng(5)
    params = [rng.uniform(-0.3, 0.3, s).astype(np.float32) for s in ((width, 4 * hid), (hid, 4 * hid), (4 * hid,))]
    ins = [rng.standard_normal(s).astype(np.float32) for s in ((batch, time, width), (batch, hid), (batch, hid))]
    versions = _core.ParamVersions(3)

    def run(plan: _core.Plan, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
        outs = [np.empty(s, np.float32) for s in shapes]
        plan.run(ins, outs)
        return outs

    def reference() -> list[np.ndarray]:
        return list(REFERENCES["lstm"][0](*[p.astype(np.float64) for p in (ins[0], *params, ins[1], ins[2])])[:3])

    def close(got: list[np.ndarray], want: list[np.ndarray]) -> None:
        for g, r in zip(got, want):
            np.testing.assert_allclose(g, r, rtol=0, atol=2e-5)

    with forced_gemm_isa(isa), threads_on_any_work(2):
        plan, shapes = _lstm_plan(batch, time, width, hid, params, versions)
        plan.prepack()  # packed when the plan is built, as an inference plan is
        packs = plan.pack_count
        assert packs >= 1 and plan.packed_bytes > 0  # at least w_hh (the step kernel's or the GEMM's layout)
        first = run(plan, shapes)
        close(first, reference())
        assert plan.pack_count == packs  # the first run packs nothing more
        assert plan.packed_step_bytes == [plan.packed_bytes]  # dlc bench's `pack` column for the step
        for a, b in zip(run(plan, shapes), first):  # the kept copies serve again, same bits
            np.testing.assert_array_equal(a, b)
        assert plan.pack_count == packs
        plan.set_weight_packing(False)  # packed per call instead: the same arithmetic
        for a, b in zip(run(plan, shapes), first):
            np.testing.assert_array_equal(a, b)
        plan.set_weight_packing(True)

        params[1] *= -1.5  # w_hh written, and the plan told: repacked, the new weights used
        versions.advance(1)
        close(run(plan, shapes), reference())
        assert plan.pack_count == packs + 1
        params[0] *= 0.5  # w_ih
        versions.advance(0)
        close(run(plan, shapes), reference())
        assert plan.pack_count == packs + 1 + (packs - 1)  # w_ih is packed only where the projection packs B
        # A write nobody reports is not seen (why packing is on only where every writer advances versions).
        params[1] *= -1
        stale = run(plan, shapes)
        versions.advance_all()
        fresh = run(plan, shapes)
        close(fresh, reference())
        assert not np.array_equal(stale[0], fresh[0])


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_an_inference_plan_packs_the_recurrent_weights_when_built(kind: str) -> None:
    prog = dlc.compile(source=f"input x: f32[B, 7, 6]\noutput h = {kind}(x, 40, return_sequences=false)\n")
    plan = prog.compile_plan({"B": 3}, training=False).plan
    packs, held = plan.pack_count, plan.packed_bytes
    assert packs >= 1 and held >= 40 * 40 * CELLS[kind].gates * 4  # w_hh at least, before any call
    x = np.random.default_rng(4).standard_normal((3, 7, 6)).astype(np.float32)
    np.testing.assert_allclose(prog(x=x)["h"], recurrent_ref(kind, dict(prog.params), "h", x, 1, False)[0][:, -1],
                               rtol=1e-4, atol=1e-5)
    assert plan.pack_count == packs and plan.packed_bytes == held


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_inference_after_a_training_step_uses_the_new_weights(kind: str) -> None:
    """An inference call, a training step, an inference call: the second must read the updated w_ih / w_hh (a
    plan keeping them packed from the first call would answer with the old ones); set_params the same."""
    src = (f"input x: f32[B, 7, 6]\ninput t: f32[B, 40]\nh = {kind}(x, 40, return_sequences=false)\noutput h\n"
           "train { loss = mean((h - t) * (h - t))\n  optimizer = sgd(lr=0.5) }\n")
    prog = dlc.compile(source=src)
    rng = np.random.default_rng(9)
    for batch in (1, 5):
        x = rng.standard_normal((batch, 7, 6)).astype(np.float32)
        before = prog(x=x)["h"]
        np.testing.assert_allclose(before, recurrent_ref(kind, dict(prog.params), "h", x, 1, False)[0][:, -1],
                                   rtol=1e-4, atol=1e-5)
        plan = prog.compile_plan({"B": batch}, training=False).plan
        packs = plan.pack_count
        assert plan.packed_bytes > 0  # the inference plan reads w_hh packed (copies are shared across batches)
        prog.train_step(x=x, t=rng.standard_normal((batch, 40)).astype(np.float32))
        after = prog(x=x)["h"]
        assert plan.pack_count > packs
        assert not np.allclose(after, before)
        np.testing.assert_allclose(after, recurrent_ref(kind, dict(prog.params), "h", x, 1, False)[0][:, -1],
                                   rtol=1e-4, atol=1e-5)
        name = next(n for n in prog.params if n.endswith("hh.weight"))
        prog.set_params({name: prog.params[name] * 0.5})
        np.testing.assert_allclose(prog(x=x)["h"], recurrent_ref(kind, dict(prog.params), "h", x, 1, False)[0][:, -1],
                                   rtol=1e-4, atol=1e-5)
