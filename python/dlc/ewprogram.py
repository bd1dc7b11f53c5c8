"""Builds programs for the C++ elementwise tile evaluator (csrc/kernels/elementwise/elementwise_cpu.cpp).

A program is a list of register instructions. Opcode numbers come from the C++ side at import time, so the
two can never disagree. A standalone elementwise op is a one-instruction program; a fused group is one
program over all its nodes; a matmul epilogue is a program whose input 0 is the GEMM result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import _core
from .errors import DlcError
from .ir import Graph, Node
from .ops import registry

OPCODES: dict[str, int] = {name: i for i, name in enumerate(_core.ew_opcode_names())}
ARITY: dict[str, int] = dict(zip(_core.ew_opcode_names(), _core.ew_opcode_arities()))
MAX_REGS = 32
MAX_INPUTS = 16


def input_ref(k: int) -> int:
    """Operand encoding of program input k."""
    return -(k + 1)


@dataclass
class ProgramBuilder:
    compute_f64: bool = False
    instrs: list[tuple[int, int, int, int, int]] = field(default_factory=list)
    imms: list[float] = field(default_factory=list)
    n_regs: int = 0

    def instr(self, opcode: str, a: int = 0, b: int = 0, c: int = 0, imm: float = 0.0) -> int:
        """Appends an instruction writing a fresh register; returns that register."""
        if opcode not in OPCODES:
            raise KeyError(f"unknown evaluator opcode {opcode}")
        dst = self.n_regs
        self.n_regs += 1
        self.instrs.append((OPCODES[opcode], dst, a, b, c))
        self.imms.append(float(imm))
        return dst

    def store(self, output: int, ref: int) -> None:
        self.instrs.append((OPCODES["STORE"], output, ref, 0, 0))
        self.imms.append(0.0)

    def allocate_registers(self) -> None:
        """Reuses registers whose value is dead, so long fused chains fit the evaluator's register file."""
        last_use: dict[int, int] = {}
        for i, (op, dst, a, b, c) in enumerate(self.instrs):
            for r in self._reads(op, a, b, c):
                if r >= 0:
                    last_use[r] = i
        mapping: dict[int, int] = {}
        free: list[int] = []
        used = 0
        out: list[tuple[int, int, int, int, int]] = []
        for i, (op, dst, a, b, c) in enumerate(self.instrs):
            # Only operand fields are registers; a field past the opcode's arity is data (dropout's salt).
            arity = len(self._reads(op, a, b, c))
            ra, rb, rc = (mapping.get(x, x) if k < arity and x >= 0 else x for k, x in enumerate((a, b, c)))
            for r in set(self._reads(op, a, b, c)):  # add(m, m) reads m twice but frees it once
                if r >= 0 and last_use.get(r) == i:
                    free.append(mapping[r])
            if op == OPCODES["STORE"]:
                out.append((op, dst, ra, rb, rc))
                continue
            if free:
                phys = free.pop()
            else:
                phys = used
                used += 1
            mapping[dst] = phys
            out.append((op, phys, ra, rb, rc))
        self.instrs = out
        self.n_regs = used

    @staticmethod
    def _reads(op: int, a: int, b: int, c: int) -> list[int]:
        names = list(OPCODES)
        arity = ARITY[names[op]]
        return [a, b, c][:arity]

    def encode(self) -> tuple[list[int], list[float]]:
        self.allocate_registers()
        if self.n_regs > MAX_REGS:
            raise ValueError("elementwise program needs too many registers")
        ints = [1 if self.compute_f64 else 0, self.n_regs, len(self.instrs)]
        for ins in self.instrs:
            ints.extend(ins)
        return ints, list(self.imms)


def build_program(graph: Graph, nodes: list[Node], inputs: list[int], outputs: list[int],
                  reduce: int | None = None) -> tuple[list[int], list[float]]:
    """The program computing `nodes` with `inputs` as its inputs 0.. and a STORE k for each of `outputs` it
    computes; with `reduce`, a last instruction copies that value (the ew_reduce kernel reduces it)."""
    if len(inputs) > MAX_INPUTS:
        raise DlcError(f"elementwise group reads {len(inputs)} tensors; the evaluator takes {MAX_INPUTS}")
    dtypes = {graph.values[v].dtype for n in nodes for v in (*n.inputs, *n.outputs)}
    pb = ProgramBuilder(compute_f64=bool(dtypes & {"f64", "i32", "i64"}))
    refs: dict[int, int] = {v: input_ref(k) for k, v in enumerate(inputs)}
    emit_nodes(pb, nodes, refs)
    for k, o in enumerate(outputs):
        if o not in inputs and o in refs:  # a matmul's C is already in place; a reduction is not stored
            pb.store(k, refs[o])
    if reduce is not None:  # ew_reduce reads the value to reduce from the last instruction's register
        pb.instr("COPY", refs[reduce])
    return pb.encode()


def emit_nodes(pb: ProgramBuilder, nodes: list[Node], refs: dict[int, int]) -> None:
    """Appends each node's instructions; `refs` maps the values available so far (inputs, earlier results) to
    operands and gains each node's result."""
    for node in nodes:
        op = registry.get(node.op)
        if op.emit is None:
            raise DlcError(f"op {node.op} cannot run in an elementwise group")
        refs[node.outputs[0]] = op.emit(pb, node, [refs[v] for v in node.inputs])
