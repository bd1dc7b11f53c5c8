"""Calls in the .dlm language: ops, layers and blocks, argument binding, layer naming, pipes and repeat.

The Elaborator (elaborate.py) owns a `Calls` and hands it call, pipe and repeat expressions; `Calls` reaches
back only through the small `Evaluator` protocol below (evaluation, statements, parameters, the graph builder),
so this module never imports the elaborator.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Protocol

from lark import Tree

from .. import initializers
from ..errors import CompileError, Loc, ShapeError
from ..ir import GraphBuilder, TensorType
from ..ops import registry
from ..ops.registry import OpDef
from .hints import quote_hint
from .modules import BlockDef, Module
from .values import Scope, TensorVal

MAX_BLOCK_DEPTH = 32
TYPE_NAMES = ("int", "float", "str", "bool", "tensor", "list")


class Evaluator(Protocol):
    """What calls need from the elaborator."""

    b: GraphBuilder
    dtype: str

    def eval(self, tree: Any, scope: Scope) -> Any: ...

    def eval_statement(self, expr: Tree, scope: Scope, target: str | None) -> Any: ...

    def statement(self, stmt: Tree, scope: Scope) -> Any: ...

    def int_literal(self, tok: Any, scope: Scope) -> int: ...

    def set_context(self, loc: Loc, scope: Scope, layer: str | None) -> None: ...

    def path_notes(self, scope: Scope) -> tuple[str, ...]: ...

    def new_param(self, name: str, t: TensorType, init: tuple[Any, ...], fans: tuple[int, int] | None,
                  loc: Loc, kind: str = "param") -> int: ...

    def shared_param(self, name: str, t: TensorType, loc: Loc) -> int: ...

    def next_salt(self) -> int: ...

    def check_node_budget(self, nodes: int, loc: Loc, scope: Scope) -> None: ...


def dotted(tree: Tree) -> str:
    """A dotted name (`nn.dense`) as written."""
    return ".".join(str(t) for t in tree.children)


@dataclass(frozen=True)
class Argument:
    """One argument of a call as written: its keyword (None for a positional one), its value's tree, and the
    tree errors about it point at (the keyword's name, or the whole argument)."""

    key: str | None
    value: Tree
    at: Tree


def call_arguments(tree: Tree, module: Module, keywords_only: str | None = None) -> list[Argument]:
    """A call's arguments in order, with the checks every call shares (op and block calls, initializers, the
    train block's settings): no positional argument after a keyword one, a plain name before '=', no keyword
    twice. `keywords_only` is the error for a positional argument where the callee takes keywords alone."""
    out: list[Argument] = []
    seen: set[str] = set()
    for arg in tree.children[1:]:
        if arg is None:
            continue
        first, second = arg.children
        if second is None:
            if keywords_only is not None:
                raise CompileError(keywords_only, module.loc(tree))
            if seen:
                raise CompileError("positional argument after a keyword argument", module.loc(arg))
            out.append(Argument(None, first, arg))
            continue
        if first.data != "name" or len(first.children[0].children) != 1:
            if keywords_only is not None:
                raise CompileError(keywords_only, module.loc(tree))
            raise CompileError("a keyword argument needs a plain name before '='", module.loc(arg))
        key = str(first.children[0].children[0])
        if key in seen:
            raise CompileError(f"duplicate keyword argument '{key}'", module.loc(first))
        seen.add(key)
        out.append(Argument(key, second, first))
    return out


def find_block(name: str, scope: Scope) -> BlockDef | None:
    """The block a call names, in the calling module or through an imported namespace (`lib.block`)."""
    if "." in name:
        ns, _, rest = name.partition(".")
        module = scope.module.namespaces.get(ns)
        return module.blocks.get(rest) if module is not None and "." not in rest else None
    return scope.module.blocks.get(name)


class Calls:
    """Evaluates calls of ops, layers and blocks for one elaboration."""

    def __init__(self, el: Evaluator):
        self.el = el

    # ---- calls ----

    def ev_call(self, tree: Tree, scope: Scope, piped: Any = None, has_piped: bool = False,
                name_override: str | None = None) -> Any:
        name_tree = tree.children[0]
        name = dotted(name_tree)
        pos: list[Any] = [piped] if has_piped else []
        kwargs: dict[str, Any] = {}
        kw_locs: dict[str, Loc] = {}
        for arg in call_arguments(tree, scope.module):
            if arg.key is None:
                pos.append(self.el.eval(arg.value, scope))
                continue
            try:
                kwargs[arg.key] = self.el.eval(arg.value, scope)
            except CompileError as e:
                raise quote_hint(e, arg.key, arg.value, registry.lookup(name)) from None
            kw_locs[arg.key] = scope.module.loc(arg.at)
        loc = scope.module.loc(name_tree)
        block = find_block(name, scope)
        if block is not None:
            return self.call_block(block, pos, kwargs, loc, scope, name_override)
        op = registry.lookup(name)
        if op is None or not op.user:
            candidates = [n for n, o in registry.all_ops().items() if o.user] + list(scope.module.blocks)
            hint = difflib.get_close_matches(name, candidates, n=1)
            suffix = f"; did you mean '{hint[0]}'?" if hint else ""
            raise CompileError(f"unknown op '{name}'{suffix}", loc)
        return self.call_op(op, pos, kwargs, loc, kw_locs, scope, name_override)

    def layer_name(self, scope: Scope, op_name: str, explicit: Any, loc: Loc) -> str:
        if explicit is not None:
            if not isinstance(explicit, str) or not explicit:
                raise CompileError("name= must be a non-empty string", loc)
            return explicit
        if scope.target is not None and scope.layer_calls == 1:
            base = scope.target
        else:
            base = f"{scope.target}.{op_name}" if scope.target else op_name
        n = scope.used_names.get(base, 0)
        scope.used_names[base] = n + 1
        return base if n == 0 else f"{base}_{n}"

    def call_op(self, op: OpDef, pos: list[Any], kwargs: dict[str, Any], loc: Loc, kw_locs: dict[str, Loc],
                scope: Scope, name_override: str | None) -> Any:
        self.el.set_context(loc, scope, None)
        explicit_name = kwargs.pop("name", None) if op.layer else None
        share = kwargs.pop("share", None) if op.layer else None
        tensors, attrs = self.bind_arguments(op, pos, kwargs, loc, kw_locs, scope)
        try:
            if op.expand is None:
                outs = self.el.b.op(op.name, [t.v for t in tensors], **attrs)
                return TensorVal(outs[0]) if len(outs) == 1 else tuple(TensorVal(o) for o in outs)
            # Composite ops (losses) expand like layers but own no parameters, so they take no name.
            lname = (name_override or self.layer_name(scope, op.name, explicit_name, loc)) if op.layer else op.name
            if op.layer:
                self.el.set_context(loc, scope, lname)
            ctx = _LayerCtx(self.el, scope, lname, share, loc)
            full = op.bind_attrs(attrs)
            outer, self.el.b.calling = self.el.b.calling, self.el.b.calling or op.name
            try:
                outs = op.expand(self.el.b, ctx, [t.v for t in tensors], full)
            finally:
                self.el.b.calling = outer
            return TensorVal(outs[0]) if len(outs) == 1 else tuple(TensorVal(o) for o in outs)
        except ShapeError as e:
            raise CompileError(f"{op.name}: {e}", loc, self.el.path_notes(scope)) from None

    def bind_arguments(self, op: OpDef, pos: list[Any], kwargs: dict[str, Any], loc: Loc,
                       kw_locs: dict[str, Loc], scope: Scope) -> tuple[list[TensorVal], dict[str, Any]]:
        tensors: list[TensorVal] = []
        if op.variadic:
            rest: list[Any] = []
            for value in pos:
                items = value if isinstance(value, list) else [value]
                for item in items:
                    if isinstance(item, TensorVal):
                        tensors.append(item)
                    else:
                        rest.append(item)
            extra = rest
        else:
            n = len(op.inputs)
            if len(pos) < n:
                raise CompileError(f"{op.name} takes {n} tensor argument{'s' * (n != 1)} "
                                   f"({', '.join(op.inputs)}), got {len(pos)}", loc)
            for name, value in zip(op.inputs, pos[:n]):
                if not isinstance(value, TensorVal):
                    raise CompileError(f"{op.name}: argument '{name}' must be a tensor, got {value!r}", loc)
                tensors.append(value)
            extra = pos[n:]
        attr_names = [a.name for a in op.attrs]
        if len(extra) > len(attr_names):
            raise CompileError(f"{op.name} takes at most {len(op.inputs) + len(attr_names)} positional arguments, "
                               f"got {len(pos)}", loc)
        attrs: dict[str, Any] = {}
        for name, value in zip(attr_names, extra):
            attrs[name] = value
        for key, value in kwargs.items():
            if key in attrs:
                raise CompileError(f"{op.name} got two values for '{key}'", kw_locs.get(key, loc))
            if op.attr_spec(key) is None:
                known = ", ".join(attr_names) or "none"
                raise CompileError(f"unknown keyword argument '{key}' for {op.name} (it takes: {known})",
                                   kw_locs.get(key, loc))
            attrs[key] = value
        if self.el.dtype == "f64":  # f64 mode runs every f32 tensor in double: casts, and defaults such as one_hot's
            for spec in op.attrs:
                if spec.kind == "dtype" and attrs.get(spec.name, spec.default) == "f32":
                    attrs[spec.name] = "f64"
        for key, value in attrs.items():
            spec = op.attr_spec(key)
            if spec is not None and spec.kind == "tensor":
                if not isinstance(value, TensorVal):
                    raise CompileError(f"{op.name}: '{key}' must be a tensor, got {value!r}", kw_locs.get(key, loc))
                attrs[key] = value.v
                continue
            if isinstance(value, TensorVal):
                raise CompileError(f"{op.name}: '{key}' must be a constant, not a tensor", kw_locs.get(key, loc))
            if isinstance(value, list):
                attrs[key] = tuple(value)
        return tensors, attrs

    def call_block(self, block: BlockDef, pos: list[Any], kwargs: dict[str, Any], loc: Loc, scope: Scope,
                   name_override: str | None) -> Any:
        if scope.depth >= MAX_BLOCK_DEPTH:
            raise CompileError(f"block calls nested more than {MAX_BLOCK_DEPTH} deep (is '{block.name}' recursive?)",
                               loc)
        explicit_name = kwargs.pop("name", None)
        share = kwargs.pop("share", None)
        lname = name_override or self.layer_name(scope, block.name, explicit_name, loc)
        if share is not None and not isinstance(share, str):
            raise CompileError("share= must name another call, as a string", loc)
        prefix = scope.prefix + (share if share is not None else lname) + "."
        env: dict[str, Any] = {}
        names = [p[0] for p in block.params]
        if len(pos) > len(names):
            raise CompileError(f"block {block.name} takes {len(names)} arguments, got {len(pos)}", loc)
        for pname, value in zip(names, pos):
            env[pname] = value
        for key, value in kwargs.items():
            if key not in names:
                raise CompileError(f"unknown keyword argument '{key}' for block {block.name} "
                                   f"(it takes: {', '.join(names) or 'none'})", loc)
            if key in env:
                raise CompileError(f"block {block.name} got two values for '{key}'", loc)
            env[key] = value
        inner = Scope(block.module, env, prefix, scope.path + (f"{block.name} ({loc.file}:{loc.line})",),
                      scope.depth + 1, sharing=scope.sharing or share is not None)
        for pname, ptype, default in block.params:
            if pname not in env:
                if default is None:
                    raise CompileError(f"block {block.name} needs the argument '{pname}'", loc)
                env[pname] = self.el.eval(default, Scope(block.module, {}, prefix, inner.path, inner.depth))
            self.check_param_type(block, pname, ptype, env[pname], loc)
        result: Any = None
        stmts = [s for s in block.body.children if isinstance(s, Tree)]
        for i, stmt in enumerate(stmts):
            if stmt.data == "return_stmt":
                if i != len(stmts) - 1:
                    raise CompileError("return must be the last statement of a block", block.module.loc(stmt))
                values = [self.el.eval_statement(e, inner, None) for e in stmt.children]
                result = values[0] if len(values) == 1 else tuple(values)
            else:
                self.el.statement(stmt, inner)
        if result is None:
            raise CompileError(f"block {block.name} has no return statement", block.loc)
        return result

    def check_param_type(self, block: BlockDef, pname: str, ptype: str | None, value: Any, loc: Loc) -> None:
        if ptype is None:
            return
        ok = {"int": isinstance(value, int) and not isinstance(value, bool),
              "float": isinstance(value, (int, float)) and not isinstance(value, bool),
              "str": isinstance(value, str), "bool": isinstance(value, bool),
              "tensor": isinstance(value, TensorVal), "list": isinstance(value, list)}.get(ptype)
        if ok is None:
            raise CompileError(f"unknown type '{ptype}' for block parameter (use {', '.join(TYPE_NAMES)})", block.loc)
        if not ok:
            raise CompileError(f"block {block.name}: '{pname}' must be {ptype}, got "
                               f"{'a tensor' if isinstance(value, TensorVal) else repr(value)}", loc)

    # ---- pipes and repeat ----

    def ev_pipe(self, tree: Tree, scope: Scope) -> Any:
        left_t, stage = tree.children
        value = self.el.eval(left_t, scope)
        return self.apply_stage(stage, value, scope)

    def apply_stage(self, stage: Tree, value: Any, scope: Scope) -> Any:
        if stage.data == "bare_stage":
            call = Tree("call", [stage.children[0]], stage.meta)
            return self.ev_call(call, scope, value, True)
        if stage.data == "call":
            return self.ev_call(stage, scope, value, True)
        if stage.data == "repeat":
            return self.ev_repeat(stage, scope, value, True)
        raise CompileError("a pipe stage must be an op, a call or a repeat", scope.module.loc(stage))

    def ev_repeat(self, tree: Tree, scope: Scope, piped: Any = None, has_piped: bool = False) -> Any:
        count_tok, call = tree.children
        count = self.el.int_literal(count_tok, scope)
        if not 1 <= count <= 1024:
            raise CompileError(f"repeat count must be between 1 and 1024, got {count}", scope.module.loc(count_tok))
        name = dotted(call.children[0])
        base = self.layer_name(scope, name, None, scope.module.loc(tree))
        value = piped
        if not has_piped:
            args = [a for a in call.children[1:] if a is not None]
            if not args or args[0].children[1] is not None:
                raise CompileError("repeat needs the first argument of the call as its input",
                                   scope.module.loc(call))
            value = self.el.eval(args[0].children[0], scope)
            call = Tree("call", [call.children[0], *args[1:]], call.meta)
        nodes = self.el.b.nodes
        start = len(nodes)
        for i in range(count):
            value = self.ev_call(call, scope, value, True, name_override=f"{base}.{i}")
            if i == 0:  # every layer elaborates alike: refuse now what the whole repeat would add
                self.el.check_node_budget(len(nodes) + (len(nodes) - start) * (count - 1),
                                          scope.module.loc(tree), scope)
        return value


class _LayerCtx:
    """What a layer's expand rule sees: parameters by local name, dropout salts."""

    def __init__(self, el: Evaluator, scope: Scope, name: str, share: Any, loc: Loc):
        self.el, self.scope, self.name, self.share, self.loc = el, scope, name, share, loc
        self.dtype = el.dtype
        if share is not None and not isinstance(share, str):
            raise CompileError("share= must name another layer, as a string", loc)

    def _shared_name(self, local: str) -> str | None:
        if self.share is not None:
            return f"{self.scope.prefix}{self.share}.{local}"
        if self.scope.sharing:
            return f"{self.scope.prefix}{self.name}.{local}"
        return None

    def param(self, local: str, t: TensorType, init: Any, fans: tuple[int, int]) -> int:
        shared = self._shared_name(local)
        if shared is not None:
            return self.el.shared_param(shared, t, self.loc)
        try:
            spec = initializers.as_spec(init)
        except ShapeError as e:
            raise CompileError(str(e), self.loc) from None
        return self.el.new_param(f"{self.scope.prefix}{self.name}.{local}", t, spec, fans, self.loc)

    def state(self, local: str, t: TensorType, init: Any) -> int:
        """Persistent non-trainable state (batch-norm running statistics): saved in checkpoints, never touched
        by the optimizer. Shared layers share their state too."""
        shared = self._shared_name(local)
        if shared is not None:
            return self.el.shared_param(shared, t, self.loc)
        return self.el.new_param(f"{self.scope.prefix}{self.name}.{local}", t, initializers.as_spec(init), None,
                                 self.loc, kind="state")

    def salt(self) -> int:
        return self.el.next_salt()
