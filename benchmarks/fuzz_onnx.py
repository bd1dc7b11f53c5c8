"""The ONNX target of fuzz.py: mutated and generated ONNX files through `dlc.onnx.from_onnx`.

Seeds are small graphs built here (dense, convolution, shape arithmetic, constants folded at import time) and
dlc's own exports of bundled models. Each case applies one or more edits to a seed and writes the file, with
an external-data file beside it, into a folder of its own:
  flip / truncate       bytes of the serialized file;
  dtype / dims          an initializer's data type or shape changed, its data left as it was;
  huge                  a declared size made enormous: a graph input's dimension, or the shape, repeats or
                        limits that Reshape, ConstantOfShape, Expand, Tile and Range read from constants;
  cycle                 a node made to read a later node's output;
  external              an initializer moved to external data: missing, outside the folder, a bad range;
  nest                  the graph wrapped in If nodes nested up to 200 deep (past protobuf's own limit);
  attribute             an attribute made huge (100,000 entries, 1 MB strings, 2^40 values) or invalid;
  opset                 the opset version changed.
Generated files chain random ops with random attributes on random shapes.

The outcome must be a program (run once on zeros when its inputs are small and concrete) or a DlcError (an
OnnxImportError, normally); anything else fails the run, and so does a case that takes more than the CPU
bound (1 s) or allocates more than the file justifies (tracemalloc's peak over 64 MiB + 16 x the bytes on
disk). The process caps its address space (fuzz.py sets RLIMIT_AS), so an unjustified huge allocation is a
MemoryError that fails the case instead of exhausting the machine.
"""

from __future__ import annotations

import shutil
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dlc

CPU_SECONDS = 1.0
SHOW_ERRORS = False
SLOWEST: list[Any] = [0.0, ""]  # the most CPU one case took, and which  # print each refusal's message (to read what the errors say)
SLACK_BYTES = 64 * 2 ** 20


def _seed_models() -> list[bytes]:
    """Small graphs that reach the importer's main paths, and two of dlc's exports."""
    from onnx import TensorProto, helper, numpy_helper

    def model(nodes: list[Any], inputs: list[tuple[str, int, list[Any]]], output: str,
              inits: dict[str, np.ndarray]) -> bytes:
        graph = helper.make_graph(
            nodes, "seed", [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
            [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
            [numpy_helper.from_array(v, k) for k, v in inits.items()])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()

    rng = np.random.default_rng(0)
    f32 = TensorProto.FLOAT
    mk = helper.make_node
    seeds = [
        model([mk("Gemm", ["x", "w", "b"], ["h"], transB=1), mk("Relu", ["h"], ["y"])], [("x", f32, ["N", 4])], "y",
              {"w": rng.standard_normal((3, 4)).astype(np.float32), "b": np.zeros(3, np.float32)}),
        model([mk("Conv", ["x", "k"], ["c"], pads=[1, 1, 1, 1]), mk("MaxPool", ["c"], ["p"], kernel_shape=[2, 2],
                                                                   strides=[2, 2]),
               mk("Flatten", ["p"], ["y"])], [("x", f32, [1, 1, 4, 4])], "y",
              {"k": rng.standard_normal((2, 1, 3, 3)).astype(np.float32)}),
        model([mk("Shape", ["x"], ["s"]), mk("Gather", ["s", "i0"], ["n"], axis=0),
               mk("Unsqueeze", ["n", "ax"], ["n1"]), mk("Concat", ["n1", "m1"], ["shape"], axis=0),
               mk("Reshape", ["x", "shape"], ["y"])], [("x", f32, ["N", 2, 3])], "y",
              {"i0": np.array(0, np.int64), "ax": np.array([0], np.int64), "m1": np.array([-1], np.int64)}),
        model([mk("ConstantOfShape", ["cs"], ["z"], value=helper.make_tensor("v", f32, [1], [1.0])),
               mk("Expand", ["z", "es"], ["e"]), mk("Tile", ["e", "reps"], ["t"]),
               mk("Range", ["r0", "r1", "r2"], ["r"]), mk("Cast", ["r"], ["rf"], to=f32),
               mk("Add", ["t", "rf"], ["a"]), mk("Mul", ["x", "a"], ["y"])], [("x", f32, [2, 4])], "y",
              {"cs": np.array([2, 1], np.int64), "es": np.array([2, 2], np.int64), "reps": np.array([1, 2], np.int64),
               "r0": np.array(0, np.int64), "r1": np.array(4, np.int64), "r2": np.array(1, np.int64)}),
        model([mk("MatMul", ["x", "w"], ["m"]), mk("Softmax", ["m"], ["s"], axis=-1),
               mk("LayerNormalization", ["s", "g", "bb"], ["y"], axis=-1)], [("x", f32, [2, 3, 4])], "y",
              {"w": rng.standard_normal((4, 5)).astype(np.float32), "g": np.ones(5, np.float32),
               "bb": np.zeros(5, np.float32)}),
    ]
    from dlc.onnx.export import export_program
    root = Path(__file__).resolve().parent.parent / "models"
    for name in ("mlp", "lenet"):
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / f"{name}.onnx"
            export_program(dlc.compile(root / f"{name}.dlm", dims={"N": 2}), out)
            seeds.append(out.read_bytes())
    return seeds


HUGE = [2 ** 31, 2 ** 40, 2 ** 62, -(2 ** 40), 0, -1, 10 ** 9]
DTYPES = [0, 1, 2, 3, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16, 99]
LOCATIONS = ["missing.bin", "../secret.bin", "/etc/passwd", "data.bin", "sub/../../secret.bin", ""]


@st.composite
def edit(draw: st.DrawFn) -> tuple[Any, ...]:
    kind = draw(st.sampled_from(["flip", "truncate", "dtype", "dims", "huge", "huge", "cycle", "external",
                                 "nest", "attribute", "opset"]))
    k = draw(st.integers(0, 1000))
    if kind == "flip":
        return ("flip", draw(st.integers(0, 10 ** 6)), draw(st.integers(0, 7)))
    if kind == "truncate":
        return ("truncate", draw(st.integers(0, 10 ** 6)))
    if kind == "dtype":
        return ("dtype", k, draw(st.sampled_from(DTYPES)))
    if kind == "dims":
        return ("dims", k, tuple(draw(st.lists(st.one_of(st.integers(0, 6), st.sampled_from(HUGE)), max_size=6))))
    if kind == "huge":
        return ("huge", k, draw(st.sampled_from(HUGE)))
    if kind == "cycle":
        return ("cycle", k, draw(st.integers(0, 1000)))
    if kind == "external":
        return ("external", k, draw(st.sampled_from(LOCATIONS)), draw(st.sampled_from([0, 4, 2 ** 40, -8])),
                draw(st.sampled_from([None, 0, 8, 2 ** 40, -1])))
    if kind == "nest":
        return ("nest", draw(st.sampled_from([1, 2, 10, 30, 60, 200])))
    if kind == "attribute":
        return ("attribute", k, draw(st.sampled_from(["kernel_shape", "pads", "strides", "axis", "perm", "to",
                                                        "transB", "value", "epsilon", "dilations"])),
                draw(st.sampled_from(["many", "string", "huge", "negative", "nan", "tensor"])))
    return ("opset", draw(st.sampled_from([0, 1, 7, 13, 21, 10 ** 6, -3])))


def _apply(data: bytes, recipe: tuple[Any, ...]) -> bytes:
    """One edit; structural edits reparse the file (a byte edit may have made it unparseable: left as is)."""
    import onnx
    from onnx import helper

    if recipe[0] == "flip":
        buf = bytearray(data)
        if buf:
            buf[recipe[1] % len(buf)] ^= 1 << recipe[2]
        return bytes(buf)
    if recipe[0] == "truncate":
        return data[:recipe[1] % (len(data) + 1)]
    m = onnx.ModelProto()
    try:
        m.ParseFromString(data)
    except Exception:  # damaged by an earlier edit: the file stays damaged
        return data
    g, kind = m.graph, recipe[0]
    inits, nodes = list(g.initializer), list(g.node)
    if kind == "dtype" and inits:
        inits[recipe[1] % len(inits)].data_type = recipe[2]
    elif kind == "dims" and inits:
        t = inits[recipe[1] % len(inits)]
        del t.dims[:]
        t.dims.extend(recipe[2])
    elif kind == "huge":
        _huge(m, recipe[1], recipe[2])
    elif kind == "cycle" and len(nodes) > 1:
        a, b = sorted((recipe[1] % len(nodes), recipe[2] % len(nodes)))
        if nodes[a].input and nodes[b].output:
            nodes[a].input[0] = nodes[b].output[0]
    elif kind == "external" and inits:
        t = inits[recipe[1] % len(inits)]
        t.ClearField("raw_data")
        t.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", recipe[2]), ("offset", recipe[3]), ("length", recipe[4])):
            if value is not None:
                entry = t.external_data.add()
                entry.key, entry.value = key, str(value)
    elif kind == "nest":
        return _nested(m, recipe[1])
    elif kind == "attribute" and nodes:
        _attribute(nodes[recipe[1] % len(nodes)], recipe[2], recipe[3])
    elif kind == "opset":
        del m.opset_import[:]
        m.opset_import.append(helper.make_opsetid("", recipe[1]))
    try:
        return m.SerializeToString()
    except Exception:  # protobuf refuses to encode (a message over 2 GiB): nothing to import
        return data


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append(n & 0x7F | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field, written by hand: protobuf's own builder refuses (or overflows its
    stack on) the nesting depths this edit makes, which is what a hostile file can still contain."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _nested(m: Any, depth: int) -> bytes:
    """The graph wrapped in `depth` If nodes (then_branch: the graph so far; else_branch: an Identity)."""
    import onnx
    from onnx import helper
    g = m.graph
    outputs = [o.name for o in g.output]
    other = helper.make_graph([helper.make_node("Identity", ["x"], [o]) for o in outputs], "other", [],
                              list(g.output)).SerializeToString()
    cond = helper.make_tensor("cond", onnx.TensorProto.BOOL, [], [True]).SerializeToString()
    ends = b"".join(_field(11, i.SerializeToString()) for i in g.input) + b"".join(
        _field(12, o.SerializeToString()) for o in g.output)
    graph = g.SerializeToString()
    for _ in range(depth):
        branch = [_field(1, name) + _field(6, body) + _varint(20 << 3) + _varint(5)  # type GRAPH
                  for name, body in ((b"then_branch", graph), (b"else_branch", other))]
        node = _field(1, b"cond") + b"".join(_field(2, o.encode()) for o in outputs) + _field(4, b"If") + \
            b"".join(_field(5, b) for b in branch)
        graph = _field(1, node) + _field(5, cond) + ends
    m.ClearField("graph")
    return m.SerializeToString() + _field(7, graph)


def _huge(m: Any, k: int, size: int) -> None:
    """A graph input's dimension, or every entry of an integer initializer (a shape, repeats, a limit)."""
    ints = [t for t in m.graph.initializer if t.data_type == 7]
    if k % 2 or not ints:
        dims = [d for i in m.graph.input for d in i.type.tensor_type.shape.dim]
        if dims:
            dims[k % len(dims)].dim_value = size
        return
    from onnx import numpy_helper
    t = ints[k % len(ints)]
    t.CopyFrom(numpy_helper.from_array(np.full(numpy_helper.to_array(t).shape, size, np.int64), t.name))


def _attribute(node: Any, name: str, how: str) -> None:
    from onnx import TensorProto, helper
    empty = TensorProto(name="t", data_type=TensorProto.FLOAT, dims=[2 ** 20, 2 ** 20])  # 2^40 values, no data
    values: dict[str, Any] = {
        "many": list(range(100_000)), "string": "s" * 1_000_000, "huge": [2 ** 40] * 4, "negative": -(2 ** 40),
        "nan": float("nan"), "tensor": empty}
    for a in list(node.attribute):
        if a.name == name:
            node.attribute.remove(a)
    node.attribute.append(helper.make_attribute(name, values[how]))


OPS = [("Relu", {}), ("Sigmoid", {}), ("Tanh", {}), ("Softmax", {"axis": -1}), ("Transpose", {"perm": [1, 0]}),
       ("Flatten", {"axis": 1}), ("ReduceMean", {"keepdims": 0}), ("Add", {}), ("Mul", {}), ("MatMul", {}),
       ("Gemm", {"transB": 1}), ("Concat", {"axis": 0}), ("Reshape", {}), ("Squeeze", {}), ("Unsqueeze", {}),
       ("Slice", {}), ("Gather", {"axis": 0}), ("Pad", {}), ("Conv", {"kernel_shape": [1, 1]}),
       ("MaxPool", {"kernel_shape": [2, 2]}), ("Cast", {"to": 1}), ("Where", {}), ("Expand", {}), ("Tile", {})]


@st.composite
def generated(draw: st.DrawFn) -> bytes:
    from onnx import TensorProto, helper, numpy_helper
    rank = draw(st.integers(0, 4))
    shape = [draw(st.one_of(st.integers(0, 5), st.sampled_from(["N", 2 ** 31]))) for _ in range(rank)]
    names, nodes, inits = ["x"], [], []
    for i in range(draw(st.integers(1, 5))):
        op, attrs = draw(st.sampled_from(OPS))
        ins = [draw(st.sampled_from(names))]
        if op in ("Add", "Mul", "MatMul", "Gemm", "Concat", "Reshape", "Slice", "Gather", "Pad", "Conv", "Where",
                  "Expand", "Tile", "Squeeze", "Unsqueeze"):
            dims = draw(st.lists(st.integers(0, 4), max_size=4))
            dtype = draw(st.sampled_from([np.float32, np.int64]))
            const = np.arange(int(np.prod(dims)), dtype=dtype).reshape(dims) - 1
            inits.append(numpy_helper.from_array(const, f"c{i}"))
            ins.append(f"c{i}")
        nodes.append(helper.make_node(op, ins, [f"h{i}"], **attrs))
        names.append(f"h{i}")
    graph = helper.make_graph(nodes, "gen", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info(names[-1], TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def check(data: bytes, folder: Path, label: str = "") -> str:
    """Imports the file from a fresh folder; the outcome, or AssertionError for anything not allowed."""
    from dlc.onnx import from_onnx
    case = folder / "case"
    shutil.rmtree(case, ignore_errors=True)
    case.mkdir()
    (case / "data.bin").write_bytes(np.arange(16, dtype=np.float32).tobytes())
    (folder / "secret.bin").write_bytes(b"secret" * 4)
    path = case / "m.onnx"
    path.write_bytes(data)
    justified = SLACK_BYTES + 16 * (len(data) + 64)
    tracemalloc.start()
    cpu = time.process_time()
    try:
        try:
            program = from_onnx(path)
        except dlc.DlcError as e:
            if SHOW_ERRORS:
                print(f"{type(e).__name__}: {str(e)[:300]}")
            return f"refused: {type(e).__name__}"
        outcome = "imported"
        specs = program.inputs.values()
        if all(all(isinstance(d, int) for d in s.shape) and np.prod(s.shape, dtype=np.int64) <= 100_000
               and max(s.shape, default=0) <= 100_000 for s in specs):  # [2^31, 0]: more than NumPy describes
            arrays = {n: np.zeros(s.shape, np.dtype({"f32": "float32", "f64": "float64", "i32": "int32",
                                                    "i64": "int64", "bool": "bool"}[s.dtype]))
                      for n, s in program.inputs.items()}
            try:
                program(**arrays)
                outcome = "imported and ran"
            except (dlc.DlcError, ValueError, IndexError) as e:
                outcome = f"imported; run refused ({type(e).__name__})"
        return outcome
    finally:
        used = time.process_time() - cpu
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        if used > SLOWEST[0]:
            SLOWEST[:] = [used, label]
        if used > CPU_SECONDS:
            raise AssertionError(f"the case took {used:.2f} s of CPU (bound {CPU_SECONDS} s)")
        if peak > justified:
            raise AssertionError(f"the case allocated {peak:,} bytes for a file of {len(data):,}")


def fuzz_onnx(examples: int, folder: Path, derandomize: bool,
              bounded: Callable[[str, str, Callable[[], str]], None]) -> None:
    seeds = _seed_models()
    for warm in (seeds[3], _apply(seeds[0], ("nest", 1))):  # the first imports load onnx's modules (the
        check(warm, folder)                                   # reference evaluator): not a case's cost
    SLOWEST[:] = [0.0, ""]

    @st.composite
    def case(draw: st.DrawFn) -> tuple[bytes, str]:
        if draw(st.integers(0, 4)) == 0:
            data = draw(generated())
            return data, "generated"
        i = draw(st.integers(0, len(seeds) - 1))
        recipes = draw(st.lists(edit(), min_size=1, max_size=3))
        data = seeds[i]
        for r in recipes:
            data = _apply(data, r)
        return data, f"seed {i}: {recipes}"

    @settings(max_examples=examples, deadline=None, database=None, derandomize=derandomize,
              suppress_health_check=list(HealthCheck))
    @given(case())
    def run(item: tuple[bytes, str]) -> None:
        data, label = item
        bounded("onnx", label, lambda: check(data, folder, label))

    run()
