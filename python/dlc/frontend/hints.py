"""Better wording for mistakes a newcomer makes often, where the generic message points the wrong way."""

from __future__ import annotations

from lark import Tree

from ..errors import CompileError
from ..ops.registry import OpDef

TEXT_KINDS = ("str", "dtype", "any")  # attribute kinds that a quoted name can fill ("any": initializers)


def quote_hint(error: CompileError, key: str, value: Tree, op: OpDef | None) -> CompileError:
    """`activation=relu` fails as "'relu' is an op; call it: relu(...)", but the fix is quoting it: a keyword
    whose value is a bare name that is an op or a block, or an undefined name given to an attribute that takes text
    (`init=he_uniform`, `padding=same`), gets a message that says so. Any other error is returned unchanged."""
    if value.data != "name" or len(value.children[0].children) != 1:
        return error
    name = str(value.children[0].children[0])
    is_callee = error.message.startswith(f"'{name}' is a")
    is_text_attr = op is not None and any(a.name == key and a.kind in TEXT_KINDS for a in op.attrs) \
        and error.message.startswith(f"undefined name '{name}'")
    if not (is_callee or is_text_attr):
        return error
    head = error.message.split(";")[0]
    return CompileError(f"{head}; to pass it as text, quote it: {key}=\"{name}\"", error.loc, error.notes)
