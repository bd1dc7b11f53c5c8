"""Symbolic dimensions.

A dimension is an `int` or a `Sym`: a monomial `coeff * N * T ...` over named dimensions. Monomials are closed
under the products and exact quotients that reshape and flatten need (`[N, 28, 28] -> [-1, 784]` gives `N`),
so shape inference runs before any dimension is bound. Anything else on a symbol (a sum, a conv window over a
symbolic height) asks the user to bind that dimension with `-D`/`dims=`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Union

from .errors import ShapeError


@dataclass(frozen=True, order=True, repr=False)
class Sym:
    coeff: int
    names: tuple[str, ...]  # sorted, with repetition for powers

    def __str__(self) -> str:
        parts = list(self.names)
        if self.coeff != 1:
            parts.insert(0, str(self.coeff))
        return "*".join(parts)

    # Shapes reach messages as lists and tuples, which format their items with repr: [N, 8, 14], not Sym(...).
    __repr__ = __str__


Dim = Union[int, Sym]


def sym(name: str) -> Sym:
    return Sym(1, (name,))


def _norm(coeff: int, names: tuple[str, ...]) -> Dim:
    return coeff if not names or coeff == 0 else Sym(coeff, tuple(sorted(names)))


def dim_mul(a: Dim, b: Dim) -> Dim:
    ca, na = (a, ()) if isinstance(a, int) else (a.coeff, a.names)
    cb, nb = (b, ()) if isinstance(b, int) else (b.coeff, b.names)
    return _norm(ca * cb, na + nb)


def dim_div(a: Dim, b: Dim) -> Dim | None:
    """a / b when it is an exact monomial, else None."""
    ca, na = (a, ()) if isinstance(a, int) else (a.coeff, a.names)
    cb, nb = (b, ()) if isinstance(b, int) else (b.coeff, b.names)
    if cb == 0 or ca % cb:
        return None
    rest = list(na)
    for n in nb:
        if n not in rest:
            return None
        rest.remove(n)
    return _norm(ca // cb, tuple(rest))


def dims_product(dims: tuple[Dim, ...]) -> Dim:
    out: Dim = 1
    for d in dims:
        out = dim_mul(out, d)
    return out


def is_concrete(shape: tuple[Dim, ...]) -> bool:
    return all(isinstance(d, int) for d in shape)


def concrete(d: Dim, what: str) -> int:
    """The integer value of d, or a ShapeError asking for the symbol to be bound."""
    if isinstance(d, int):
        return d
    raise ShapeError(f"{what} needs a concrete size but got symbolic '{d}'; bind it with -D {d.names[0]}=... "
                     f"or dims={{'{d.names[0]}': ...}}")


def substitute(d: Dim, binding: Mapping[str, int]) -> Dim:
    if isinstance(d, int):
        return d
    out: Dim = d.coeff
    for n in d.names:
        out = dim_mul(out, binding.get(n, sym(n)))
    return out


def shape_str(shape: tuple[Dim, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def broadcast_shapes(a: tuple[Dim, ...], b: tuple[Dim, ...]) -> tuple[Dim, ...]:
    """NumPy broadcasting; a pair that is neither equal nor 1 is an error (never a silent pad)."""
    n = max(len(a), len(b))
    pa = (1,) * (n - len(a)) + tuple(a)
    pb = (1,) * (n - len(b)) + tuple(b)
    out: list[Dim] = []
    for x, y in zip(pa, pb):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            raise ShapeError(f"shapes {shape_str(a)} and {shape_str(b)} do not broadcast "
                             f"(dimension {x} against {y})")
    return tuple(out)
