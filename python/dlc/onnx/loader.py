"""Reading ONNX files defensively: every malformed file becomes an `OnnxImportError` that says what is wrong.

The protobuf is parsed from bytes (a truncated or corrupt file is a clear error, not a crash), initializers are
checked against their declared shapes, external data is read only from files inside the model's folder, and
the nodes are put in dependency order (a cycle or an input that nothing produces is named).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DlcError

MAX_FILE_BYTES = 2 ** 31  # protobuf's own limit for one message


class OnnxImportError(DlcError):
    """An ONNX model dlc cannot import: malformed, or using ops or attributes dlc cannot express."""


def read_model(source: str | os.PathLike[str] | bytes) -> tuple[Any, Path | None]:
    """Parses a model from a path or from bytes; returns it with external data loaded, and its folder."""
    from google.protobuf.message import DecodeError
    import onnx

    base: Path | None = None
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, where = bytes(source), "<bytes>"
    else:
        path = Path(source)
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                raise OnnxImportError(f"{path}: larger than 2 GiB; keep the weights in external data files")
            data = path.read_bytes()
        except OSError as e:
            raise OnnxImportError(f"{path}: cannot read ({e.strerror or e})") from None
        base, where = path.resolve().parent, str(path)
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise OnnxImportError(f"{where}: not a valid ONNX file (the protobuf does not parse: {e})") from None
    if not model.HasField("graph") or not model.graph.node:
        raise OnnxImportError(f"{where}: the file holds no graph (empty, truncated or not an ONNX model)")
    for tensor in _all_initializers(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            _load_external(tensor, base, where)
        check_tensor(tensor, where)
    return model, base


def _all_initializers(model: Any) -> list[Any]:
    tensors = list(model.graph.initializer)
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                tensors.append(attr.t)
    return tensors


def _load_external(tensor: Any, base: Path | None, where: str) -> None:
    """Reads external data into the tensor, refusing any path that leaves the model's folder."""
    import onnx

    info = {e.key: e.value for e in tensor.external_data}
    location = info.get("location", "")
    if base is None:
        raise OnnxImportError(f"{where}: initializer '{tensor.name}' keeps its data in '{location}'; load the "
                              "model from its file path so the data file can be found")
    target = (base / location).resolve()
    if not location or os.path.isabs(location) or not target.is_relative_to(base):
        raise OnnxImportError(f"{where}: initializer '{tensor.name}' points at external data '{location}' "
                              "outside the model's folder; refused")
    if not target.is_file():
        raise OnnxImportError(f"{where}: initializer '{tensor.name}' needs external data file '{location}', "
                              "which does not exist")
    try:
        offset, length = int(info.get("offset", 0)), int(info["length"]) if "length" in info else -1
    except ValueError:
        raise OnnxImportError(f"{where}: initializer '{tensor.name}' has a bad external-data offset or length") \
            from None
    size = target.stat().st_size
    if offset < 0 or offset > size or (length >= 0 and offset + length > size):
        raise OnnxImportError(f"{where}: initializer '{tensor.name}': external data range [{offset}, "
                              f"{offset + max(length, 0)}) lies past the end of '{location}' ({size} bytes)")
    with open(target, "rb") as f:
        f.seek(offset)
        tensor.raw_data = f.read() if length < 0 else f.read(length)
    del tensor.external_data[:]
    tensor.data_location = onnx.TensorProto.DEFAULT


_FIELD = {1: "float_data", 2: "int32_data", 3: "int32_data", 4: "int32_data", 5: "int32_data", 6: "int32_data",
          7: "int64_data", 9: "int32_data", 10: "int32_data", 11: "double_data", 12: "uint64_data",
          13: "uint64_data", 16: "int32_data"}


def check_tensor(tensor: Any, where: str) -> None:
    """An initializer's data must hold exactly as many elements as its shape says."""
    from onnx import helper

    if any(d < 0 for d in tensor.dims):
        raise OnnxImportError(f"{where}: initializer '{tensor.name}' has a negative dimension {list(tensor.dims)}")
    count = int(np.prod(tensor.dims, dtype=np.int64)) if tensor.dims else 1
    if tensor.data_type == 8:  # strings: dlc has no string tensors, rejected later with the node using them
        return
    try:
        itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
    except (KeyError, TypeError, ValueError):
        raise OnnxImportError(f"{where}: initializer '{tensor.name}' has unknown data type {tensor.data_type}") \
            from None
    if tensor.HasField("raw_data"):
        got = len(tensor.raw_data)
        want = count * itemsize
    else:
        field = _FIELD.get(tensor.data_type)
        got = len(getattr(tensor, field)) if field else count
        want = count * (2 if tensor.data_type in (14, 15) else 1)
        if tensor.data_type in (14, 15):
            got = len(getattr(tensor, "float_data" if tensor.data_type == 14 else "double_data"))
    if got != want:
        raise OnnxImportError(f"{where}: initializer '{tensor.name}' has shape {list(tensor.dims)} "
                              f"({count} elements) but its data holds {got} {'bytes' if tensor.HasField('raw_data') else 'values'} "
                              f"(expected {want})")


def sorted_nodes(graph: Any, known: set[str], where: str) -> list[Any]:
    """The nodes in dependency order. A node input nothing defines, or a cycle, is an error naming the nodes."""
    produced: dict[str, int] = {}
    for i, node in enumerate(graph.node):
        for out in node.output:
            if out:
                if out in produced or out in known:
                    raise OnnxImportError(f"{where}: tensor '{out}' is defined twice (node "
                                          f"{_label(node)}); ONNX graphs assign every name once")
                produced[out] = i
    missing = [(node, name) for node in graph.node for name in _node_inputs(node)
               if name not in produced and name not in known]
    if missing:
        lines = [f"node {_label(n)} reads '{name}', which no input, initializer or node defines"
                 for n, name in missing]
        raise OnnxImportError(f"{where}: " + "; ".join(lines))
    order: list[Any] = []
    state = [0] * len(graph.node)  # 0 new, 1 on the stack, 2 done
    for start in range(len(graph.node)):
        if state[start]:
            continue
        stack = [(start, iter([produced[n] for n in _node_inputs(graph.node[start]) if n in produced]))]
        state[start] = 1
        while stack:
            idx, deps = stack[-1]
            nxt = next(deps, None)
            if nxt is None:
                stack.pop()
                state[idx] = 2
                order.append(graph.node[idx])
            elif state[nxt] == 1:
                cycle = [graph.node[i] for i, _ in stack[[i for i, _ in stack].index(nxt):]]
                raise OnnxImportError(f"{where}: the graph has a cycle through nodes "
                                      f"{', '.join(_label(n) for n in cycle)}")
            elif state[nxt] == 0:
                state[nxt] = 1
                stack.append((nxt, iter([produced[n] for n in _node_inputs(graph.node[nxt]) if n in produced])))
    return order


def _node_inputs(node: Any) -> list[str]:
    """Tensor names a node reads, including those its subgraphs (If, Loop) read from the outer scope."""
    names = [n for n in node.input if n]
    return names


def _label(node: Any) -> str:
    return f"'{node.name}' ({node.op_type})" if node.name else f"({node.op_type} -> {', '.join(node.output)})"
