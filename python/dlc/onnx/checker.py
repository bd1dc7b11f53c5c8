"""dlc's own types for the .dlm being written: each statement is elaborated as soon as the importer writes it.

ONNX shape inference leaves ranks and dimensions unknown wherever a shape is computed by the graph (a Reshape
whose target comes from Shape -> Gather -> Div ...), and names the dimensions it cannot relate to the inputs
(`unk__3`). The importer does not rely on it: every converted statement goes through dlc's elaborator here,
so the dtype and shape of every variable (symbolic dimensions as `Sym` monomials of the model's input dims)
are exactly what `dlc.compile` will see, and a statement dlc rejects is reported against its ONNX node.
"""

from __future__ import annotations

from typing import Mapping

from lark import Tree

from ..errors import CompileError
from ..ir import TensorType
from .values import Unsupported


class DlmChecker:
    """Elaborates .dlm statements one at a time into one graph, keeping the names they bind."""

    def __init__(self, dims: Mapping[str, int] | None = None):
        from ..frontend.elaborate import Elaborator
        from ..frontend.modules import Module
        from ..frontend.values import Scope
        root = Module("<import>", "", Tree("start", []))
        self.elaborator = Elaborator(root, dims, "f32")
        self.scope = Scope(root, {}, "")

    def statement(self, text: str) -> None:
        """Elaborates one statement; a rejection becomes `Unsupported` with dlc's message."""
        from ..frontend.modules import Module
        from ..frontend.parser import parse
        try:
            tree = parse(text, "<import>")
            self.scope.module = Module("<import>", text, tree)
            for stmt in tree.children:
                if isinstance(stmt, Tree):
                    self.elaborator.statement(stmt, self.scope)
        except CompileError as e:
            raise Unsupported(f"dlc rejects the converted statement `{_short(text)}`: {e.message}") from None

    def type_of(self, var: str) -> TensorType | None:
        from ..frontend.values import TensorVal
        value = self.scope.env.get(var)
        if not isinstance(value, TensorVal):
            return None
        return self.elaborator.b.type_of(value.v)


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[:limit] + " ..."
