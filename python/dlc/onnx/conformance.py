"""Runs ONNX's own backend test cases through dlc: the node cases that ship inside the `onnx` package
(`onnx.backend.test.case.node`), and the model cases with reference outputs in its data folder (light/,
pytorch-converted/, pytorch-operator/). Each case ends `passed`, `failed` (imported, but wrong numbers or an
error after import) or `unsupported` (the importer refused it with its clear error).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np


@dataclass
class Case:
    name: str
    op: str  # the op the case tests (node cases), or the folder (model cases)
    model: bytes
    inputs: list[dict[str, np.ndarray]]
    outputs: list[list[np.ndarray]]
    rtol: float = 1e-3
    atol: float = 1e-7


@dataclass
class Result:
    case: Case
    status: str  # passed | failed | unsupported
    detail: str = ""


# Node-case modules whose name is not the op's name in lower case.
_MODULE_ALIASES = {"BatchNormalization": "batch_normalization", "InstanceNormalization": "instance_normalization",
                   "GreaterOrEqual": "greater_or_equal", "LessOrEqual": "less_or_equal",
                   "ReduceLogSum": "reduce_log_sum", "ReduceLogSumExp": "reduce_log_sum_exp", "And": "and_",
                   "Or": "or_", "Not": "not_", "SoftmaxCrossEntropyLoss": "softmax_cross_entropy_loss"}


def node_cases(ops: set[str] | None = None) -> list[Case]:
    """ONNX's node test cases (expanded function bodies are counted under their op). With `ops`, only the
    generator modules of those ops are run, which is much faster than collecting all ~1,900 cases."""
    import importlib
    import pkgutil
    import warnings

    import onnx.backend.test.case.node as node_pkg

    with warnings.catch_warnings():  # the case generators overflow casts on purpose
        warnings.simplefilter("ignore")
        if ops is None:
            collected = node_pkg.collect_testcases()
        else:
            wanted = {_MODULE_ALIASES.get(op, op.lower()) for op in ops}
            for mod in pkgutil.iter_modules(node_pkg.__path__):
                if mod.name in wanted:
                    importlib.import_module(f"{node_pkg.__name__}.{mod.name}")
            # Importing a generator module registers its cases in this list (what collect_testcases returns).
            collected = node_pkg._NodeTestCases
    cases = []
    for tc in collected:
        model = tc.model
        graph_inputs = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
        op = "" if "_expanded" in tc.name else model.graph.node[0].op_type
        sets = []
        outs = []
        for ins, expected in tc.data_sets or []:
            # Tensors stored as TensorProto become arrays; sequences and optionals stay lists (dlc rejects them).
            sets.append({n: _array(a) for n, a in zip(graph_inputs, ins)})
            outs.append([_array(a) for a in expected])
        cases.append(Case(tc.name, op, model.SerializeToString(), sets, outs, tc.rtol, tc.atol))
    _fix_expanded_ops(cases)
    return cases if ops is None else [c for c in cases if c.op in ops]


def _array(value: Any) -> Any:
    from onnx import TensorProto, numpy_helper
    return numpy_helper.to_array(value) if isinstance(value, TensorProto) else value


def _fix_expanded_ops(cases: list[Case]) -> None:
    """An expanded case (the op's function body as several nodes) counts under the op it expands."""
    ops = {c.name: c.op for c in cases if "_expanded" not in c.name}
    for c in cases:
        if "_expanded" in c.name:  # test_x_expanded, test_x_expanded_ver18
            c.op = ops.get(c.name.split("_expanded")[0], c.name)


def data_folder() -> Path:
    import onnx
    return Path(os.path.dirname(onnx.__file__)) / "backend" / "test" / "data"


def model_cases(kinds: tuple[str, ...] = ("light", "pytorch-converted", "pytorch-operator")) -> list[Case]:
    """The model cases with stored inputs and reference outputs."""
    from onnx import TensorProto, numpy_helper

    def read(path: Path) -> np.ndarray:
        t = TensorProto()
        t.ParseFromString(path.read_bytes())
        return numpy_helper.to_array(t)

    cases = []
    root = data_folder()
    for kind in kinds:
        folder = root / kind
        if kind == "light":
            for f in sorted(folder.glob("*.onnx")):
                ref = folder / f"{f.stem}_output_0.pb"
                cases.append(Case(f.stem, "light", f.read_bytes(), [{}], [[read(ref)]]))
            continue
        for d in sorted(p for p in folder.iterdir() if (p / "model.onnx").is_file()):
            import onnx
            model = onnx.load_from_string((d / "model.onnx").read_bytes())
            names = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
            sets, outs = [], []
            for ds in sorted(d.glob("test_data_set_*")):
                ins = [read(p) for p in sorted(ds.glob("input_*.pb"), key=lambda p: int(p.stem.split("_")[1]))]
                exp = [read(p) for p in sorted(ds.glob("output_*.pb"), key=lambda p: int(p.stem.split("_")[1]))]
                sets.append(dict(zip(names, ins)))
                outs.append(exp)
            cases.append(Case(d.name, kind, (d / "model.onnx").read_bytes(), sets, outs))
    return cases


def run_case(case: Case) -> Result:
    """Imports, compiles and runs one case; compares every output with the reference."""
    import dlc

    from ..ir import np_dtype
    from .importer import import_model
    from .loader import OnnxImportError
    try:
        converted = import_model(case.model)
    except OnnxImportError as e:
        reason = str(e).split("\n", 1)[-1].strip()
        frozen = _bind_inputs(case) if _NEEDS_CONSTANT in reason or _NEEDS_KNOWN in reason else None
        if frozen is None:
            return Result(case, "unsupported", reason)
        result = run_case(frozen)
        result.case = case
        result.detail = result.detail or "with its weight/shape inputs bound as initializers"
        return result
    try:
        program = dlc.compile(source=converted.text)
        program.set_params(converted.params)
        for inputs, expected in zip(case.inputs, case.outputs):
            if not inputs and program.inputs:  # light models: the reference does not depend on the input
                inputs = {n: np.zeros([d if isinstance(d, int) else 1 for d in s.shape], np_dtype(s.dtype))
                          for n, s in program.inputs.items()}
            feeds = {converted.input_names.get(n, n): a for n, a in inputs.items()}
            for n, a in feeds.items():  # a few generators store numbers as object arrays
                if isinstance(a, np.ndarray) and a.dtype == object and n in program.inputs:
                    feeds[n] = a.astype(np_dtype(program.inputs[n].dtype))
            got = list(program(**{n: a for n, a in feeds.items() if n in program.inputs}).values())
            if len(got) != len(expected):
                return Result(case, "failed", f"{len(got)} outputs, expected {len(expected)}")
            for k, (g, e) in enumerate(zip(got, expected)):
                if isinstance(e, np.generic):
                    e = np.asarray(e)
                if not isinstance(e, np.ndarray):
                    return Result(case, "failed", f"output {k}: expected a {type(e).__name__}")
                if g.shape != e.shape:
                    return Result(case, "failed", f"output {k}: shape {g.shape}, expected {e.shape}")
                if g.dtype != e.dtype:
                    return Result(case, "failed", f"output {k}: dtype {g.dtype}, expected {e.dtype}")
                if not np.allclose(g, e, rtol=case.rtol, atol=case.atol, equal_nan=True):
                    err = float(np.max(np.abs(g.astype(np.float64) - e.astype(np.float64))))
                    return Result(case, "failed", f"output {k}: max abs error {err:.3g}")
    except Exception as e:  # a crash after a successful import is a failure of dlc, recorded as such
        return Result(case, "failed", f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    return Result(case, "passed")


_NEEDS_CONSTANT = "must be a constant"
_NEEDS_KNOWN = "must be known when the model is imported"


def _bind_inputs(case: Case) -> Case | None:
    """The case with every graph input after the first made an initializer holding the test's value.
    Node cases feed weights, shapes, axes and pads as run-time inputs; dlc compiles them into the model (as
    a model file would store them), so the case is run that way. None when there is nothing to bind."""
    import onnx
    from onnx import numpy_helper

    if len(case.inputs) != 1:
        return None
    model = onnx.load_from_string(case.model)
    inits = {t.name for t in model.graph.initializer}
    runtime = [i for i in model.graph.input if i.name not in inits]
    if len(runtime) < 2 or not all(isinstance(case.inputs[0].get(i.name), (np.ndarray, np.generic))
                                   for i in runtime[1:]):
        return None
    for vi in runtime[1:]:
        model.graph.initializer.append(numpy_helper.from_array(np.asarray(case.inputs[0][vi.name]), vi.name))
    keep = [vi for vi in model.graph.input if vi.name == runtime[0].name or vi.name in inits]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    first = runtime[0].name
    return Case(case.name, case.op, model.SerializeToString(), [{first: case.inputs[0][first]}], case.outputs,
                case.rtol, case.atol)


def run_all(cases: list[Case]) -> Iterator[Result]:
    for case in cases:
        yield run_case(case)


def table(results: list[Result]) -> list[tuple[str, int, int, int]]:
    """(op, passed, failed, unsupported) per op, sorted by op."""
    rows: dict[str, list[int]] = {}
    for r in results:
        row = rows.setdefault(r.case.op, [0, 0, 0])
        row[("passed", "failed", "unsupported").index(r.status)] += 1
    return [(op, *row) for op, row in sorted(rows.items())]  # type: ignore[misc]


def supported_ops() -> set[str]:
    """The ONNX op types the importer claims to support (it has a converter for)."""
    from . import converters  # noqa: F401
    from .registry import CONVERTERS
    return set(CONVERTERS) | {"Constant", "ConstantOfShape"}


def summary(results: list[Result]) -> dict[str, Any]:
    counts = {"passed": 0, "failed": 0, "unsupported": 0}
    for r in results:
        counts[r.status] += 1
    return counts
