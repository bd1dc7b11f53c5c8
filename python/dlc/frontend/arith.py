"""Infix operators: which op a `+ - * / @ ** == ...` between tensors and numbers becomes.

Numbers never become full tensors when a scalar op will do (`x * 2` is one `mul_scalar`), and two numbers are
folded right away (`units * 2` inside a block is a plain integer).
"""

from __future__ import annotations

import math
import operator
from typing import Any

from ..errors import ShapeError
from ..ir import FLOAT_DTYPES, GraphBuilder
from .values import TensorVal

TENSOR_OPS = {"+": "add", "-": "sub", "*": "mul", "/": "div", "@": "matmul", "**": "pow", "==": "eq",
              "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
NUMBER_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv, "**": operator.pow,
              "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
              ">=": operator.ge}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def binary(b: GraphBuilder, op: str, left: Any, right: Any) -> Any:
    lt, rt = isinstance(left, TensorVal), isinstance(right, TensorVal)
    if lt and rt:
        return TensorVal(b.op1(TENSOR_OPS[op], left.v, right.v))
    if lt and _is_number(right):
        return TensorVal(_tensor_number(b, op, left.v, float(right)))
    if rt and _is_number(left):
        return TensorVal(_number_tensor(b, op, float(left), right.v))
    if _is_number(left) and _is_number(right) and op in NUMBER_OPS:
        if op == "/" and right == 0:
            raise ShapeError("division by zero")
        if op == "**" and abs(right) > 64:
            raise ShapeError("exponent too large")
        try:
            result = NUMBER_OPS[op](left, right)
        except OverflowError:
            raise ShapeError("number out of range") from None
        if isinstance(result, float) and not math.isfinite(result):
            raise ShapeError("number out of range")
        if isinstance(result, int) and abs(result) > 2 ** 53:
            raise ShapeError("integer too large")
        return result
    raise ShapeError(f"unsupported operands {_describe(left)} and {_describe(right)}")


def _describe(v: Any) -> str:
    return "a tensor" if isinstance(v, TensorVal) else repr(v)


def _tensor_number(b: GraphBuilder, op: str, x: int, c: float) -> int:
    if b.type_of(x).dtype in FLOAT_DTYPES:
        if op == "+":
            return b.op1("add_scalar", x, value=c)
        if op == "-":
            return b.op1("add_scalar", x, value=-c)
        if op == "*":
            return b.op1("mul_scalar", x, value=c)
        if op == "/":
            if c == 0:
                raise ShapeError("division by the constant 0")
            return b.op1("mul_scalar", x, value=1.0 / c)
        if op == "**":
            return b.op1("square", x) if c == 2 else b.op1("pow_scalar", x, value=c)
    if op == "@":
        raise ShapeError("@ needs two tensors")
    return b.op1(TENSOR_OPS[op], x, b.scalar(c, b.type_of(x).dtype))


def _number_tensor(b: GraphBuilder, op: str, c: float, x: int) -> int:
    if b.type_of(x).dtype in FLOAT_DTYPES:
        if op == "+":
            return b.op1("add_scalar", x, value=c)
        if op == "*":
            return b.op1("mul_scalar", x, value=c)
        if op == "-":
            return b.op1("add_scalar", b.op1("neg", x), value=c)
        if op == "/":
            return b.op1("mul_scalar", b.op1("reciprocal", x), value=c)
    if op == "@":
        raise ShapeError("@ needs two tensors")
    return b.op1(TENSOR_OPS[op], b.scalar(c, b.type_of(x).dtype), x)
