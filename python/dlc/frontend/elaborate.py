"""Elaboration: a parsed module becomes a typed `Graph`.

Statements run in order; every name is bound once. Ops are looked up in the registry, layers expand into
primitives and create their parameters under stable hierarchical names, blocks are inlined with a fresh
parameter scope per call (unless `share=` names another call), and shapes are inferred as each node is added,
so every error is reported at its source location with the block call path.

Layer naming: a layer or block call takes its name from `name=`, or from the assigned variable when it is the
statement's only layer call (`h1 = dense(x, 512)` makes `h1.weight`); otherwise `<variable>.<op>`, numbered
from the second (`h.dense`, `h.dense_1`). Inside a block, names are prefixed with the call's name.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Mapping

from lark import Token, Tree

from .. import initializers
from ..dims import Dim, Sym, sym
from ..errors import CompileError, Loc, ShapeError
from ..ir import DTYPES, Graph, GraphBuilder, TensorType
from ..ops import registry
from ..ops.registry import OpDef
from .modules import BlockDef, Module

MAX_BLOCK_DEPTH = 32
MAX_INT_LITERAL = 2 ** 53
MAX_PARAM_ELEMENTS = 2 ** 31  # 8 GiB of f32: beyond it an initializer would only fail with MemoryError
TYPE_NAMES = ("int", "float", "str", "bool", "tensor", "list")


@dataclass(frozen=True)
class TensorVal:
    """A tensor-valued name: a graph value id."""

    v: int


@dataclass
class Scope:
    module: Module
    env: dict[str, Any]
    prefix: str  # parameter-name prefix, e.g. "enc.0."
    path: tuple[str, ...] = ()  # block call path, for messages
    depth: int = 0
    sharing: bool = False  # inside a block call with share=: every parameter already exists and is reused
    # Per-statement layer naming state.
    target: str | None = None
    layer_calls: int = 0
    used_names: dict[str, int] = field(default_factory=dict)


@dataclass
class Elaborated:
    graph: Graph
    train: Tree | None  # the train { } block, interpreted by the training front end
    train_scope: Scope | None
    builder: GraphBuilder
    elaborator: "Elaborator"


class Elaborator:
    def __init__(self, module: Module, dims: Mapping[str, int] | None = None, dtype: str = "f32"):
        self.root = module
        self.dims = dict(dims or {})
        self.dtype = dtype
        self.b = GraphBuilder()
        self.symbols: set[str] = set()
        self.param_types: dict[str, TensorType] = {}
        self.param_values: dict[str, int] = {}
        self._salt = 0

    # ---- entry point ----

    def run(self) -> Elaborated:
        scope = Scope(self.root, {}, "")
        train: Tree | None = None
        outputs: list[tuple[str, int]] = []
        for stmt in self.root.tree.children:
            if not isinstance(stmt, Tree):
                continue
            kind = stmt.data
            if kind in ("block_def", "import_stmt", "from_import"):
                continue
            if kind == "train_block":
                if train is not None:
                    raise CompileError("only one train block is allowed", self.root.loc(stmt))
                train = stmt.children[0]
                continue
            if kind == "return_stmt":
                raise CompileError("return outside a block", self.root.loc(stmt))
            if kind == "output_stmt":
                for item in stmt.children:
                    outputs.append(self.output_item(item, scope, outputs))
                continue
            self.statement(stmt, scope)
        if not outputs:
            raise CompileError("the model declares no output (add `output NAME`)",
                               Loc(self.root.filename, 1, 1, self.root.text))
        self.b.outputs = outputs
        return Elaborated(self.b.build(), train, scope, self.b, self)

    def output_item(self, item: Tree, scope: Scope, outputs: list[tuple[str, int]]) -> tuple[str, int]:
        name_tok, expr = item.children
        name = str(name_tok)
        if any(n == name for n, _ in outputs):
            raise CompileError(f"'{name}' is already an output", scope.module.loc(name_tok))
        if expr is not None:
            self.bind(scope, name_tok, self.eval_statement(expr, scope, name))
        value = self.lookup(name_tok, scope)
        if not isinstance(value, TensorVal):
            raise CompileError(f"output '{name}' is not a tensor", scope.module.loc(name_tok))
        return name, value.v

    # ---- statements ----

    def statement(self, stmt: Tree, scope: Scope) -> Any:
        kind = stmt.data
        if kind == "input_stmt":
            self.input_stmt(stmt, scope)
        elif kind == "param_stmt":
            self.param_stmt(stmt, scope)
        elif kind == "assign":
            *targets, expr = stmt.children
            value = self.eval_statement(expr, scope, str(targets[0]))
            if len(targets) == 1:
                self.bind(scope, targets[0], value)
            else:
                if not isinstance(value, tuple) or len(value) != len(targets):
                    got = len(value) if isinstance(value, tuple) else 1
                    raise CompileError(f"{len(targets)} names on the left but the right side gives {got} value(s)",
                                       scope.module.loc(targets[0]))
                for t, v in zip(targets, value):
                    self.bind(scope, t, v)
        elif kind in ("input_stmt", "output_stmt", "block_def", "import_stmt", "from_import", "train_block"):
            raise CompileError(f"'{kind.split('_')[0]}' is not allowed inside a block", scope.module.loc(stmt))
        else:
            raise CompileError(f"unexpected statement {kind}", scope.module.loc(stmt))

    def input_stmt(self, stmt: Tree, scope: Scope) -> None:
        name_tok, type_tree = stmt.children
        if scope.depth:
            raise CompileError("inputs are declared at the top level, not inside blocks", scope.module.loc(stmt))
        t = self.tensor_type(type_tree, scope, allow_symbols=True)
        self.check_unbound(scope, name_tok)
        v = self.b.add_input(str(name_tok), t)
        scope.env[str(name_tok)] = TensorVal(v)

    def param_stmt(self, stmt: Tree, scope: Scope) -> None:
        name_tok, type_tree, init_tree = stmt.children
        t = self.tensor_type(type_tree, scope, allow_symbols=False)
        if t.dtype not in ("f32", "f64"):
            raise CompileError(f"parameters must be floating point, got {t.dtype}", scope.module.loc(type_tree))
        self.set_context(scope.module.loc(stmt), scope, None)
        init = self.init_spec(init_tree, scope) if init_tree is not None else initializers.make_spec("xavier_uniform")
        self.check_unbound(scope, name_tok)
        full = scope.prefix + str(name_tok)
        loc = scope.module.loc(name_tok)
        v = self.shared_param(full, t, loc) if scope.sharing else self.new_param(full, t, init, None, loc)
        scope.env[str(name_tok)] = TensorVal(v)

    def tensor_type(self, tree: Tree, scope: Scope, allow_symbols: bool) -> TensorType:
        dtype_tok, *dims = tree.children
        dtype = str(dtype_tok)
        if dtype not in DTYPES:
            raise CompileError(f"unknown dtype '{dtype}' (use one of {', '.join(DTYPES)})", scope.module.loc(dtype_tok))
        if dtype == "f32" and self.dtype == "f64":
            dtype = "f64"
        shape: list[Dim] = []
        for d in dims:
            if d is None:
                continue
            if isinstance(d, Tree):  # neg_dim
                raise CompileError("dimensions must be positive", scope.module.loc(d))
            if d.type == "INT":
                n = self.int_literal(d, scope)
                shape.append(n)
                continue
            name = str(d)
            value = scope.env.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                shape.append(value)
            elif name in self.dims:
                shape.append(self.dims[name])
            elif allow_symbols:
                self.symbols.add(name)
                shape.append(sym(name))
            else:
                raise CompileError(f"parameter dimension '{name}' must be a number or an int block argument",
                                   scope.module.loc(d))
        return TensorType(dtype, tuple(shape))

    def int_literal(self, tok: Token, scope: Scope) -> int:
        text = str(tok)
        if len(text) > 15 or int(text) > MAX_INT_LITERAL:
            raise CompileError(f"integer literal {text[:20]}{'...' if len(text) > 20 else ''} is too large",
                               scope.module.loc(tok))
        return int(text)

    def bind(self, scope: Scope, tok: Token, value: Any) -> None:
        self.check_unbound(scope, tok)
        scope.env[str(tok)] = value

    def check_unbound(self, scope: Scope, tok: Token) -> None:
        if str(tok) in scope.env:
            raise CompileError(f"'{tok}' is already defined; names are assigned once (pick a new name)",
                               scope.module.loc(tok))

    # ---- parameters ----

    def new_param(self, name: str, t: TensorType, init: tuple[Any, ...], fans: tuple[int, int] | None,
                  loc: Loc, kind: str = "param") -> int:
        from ..dims import is_concrete
        if not is_concrete(t.shape):
            raise CompileError(f"parameter '{name}' has a symbolic shape {t}; parameter shapes must be fixed", loc)
        if name in self.param_types:
            raise CompileError(f"parameter '{name}' is defined twice; give one of the layers a different name=",
                               loc)
        count = 1
        for d in t.shape:
            count *= int(d)
        if count > MAX_PARAM_ELEMENTS:
            raise CompileError(f"parameter '{name}' {t} has {count:,} elements; the limit is "
                               f"{MAX_PARAM_ELEMENTS:,}", loc)
        v = self.b.add_param(name, t, init, kind=kind, trainable=kind == "param", fans=fans)
        self.param_types[name] = t
        self.param_values[name] = v
        return v

    def shared_param(self, name: str, t: TensorType, loc: Loc) -> int:
        if name not in self.param_values:
            raise CompileError(f"share: there is no parameter '{name}' to share", loc)
        if self.param_types[name] != t:
            raise CompileError(f"share: parameter '{name}' is {self.param_types[name]} but this layer needs {t}",
                               loc)
        return self.param_values[name]

    def init_spec(self, tree: Tree, scope: Scope) -> tuple[Any, ...]:
        loc = scope.module.loc(tree)
        try:
            if tree.data == "name":
                return initializers.make_spec(self.dotted(tree.children[0]))
            if tree.data == "call":
                name = self.dotted(tree.children[0])
                kwargs: dict[str, Any] = {}
                for arg in tree.children[1:]:
                    if arg is None:
                        continue
                    key, val = arg.children
                    if val is None or key.data != "name":
                        raise CompileError("initializer arguments are keywords, e.g. normal(std=0.02)", loc)
                    k = self.dotted(key.children[0])
                    if k in kwargs:
                        raise CompileError(f"duplicate keyword argument '{k}'", scope.module.loc(key))
                    kwargs[k] = self.eval(val, scope)
                return initializers.make_spec(name, kwargs)
            value = self.eval(tree, scope)
            return initializers.as_spec(value)
        except ShapeError as e:
            raise CompileError(str(e), loc) from None

    # ---- expressions ----

    def eval_statement(self, expr: Tree, scope: Scope, target: str | None) -> Any:
        scope.target = target
        scope.layer_calls = self.count_layer_calls(expr, scope)
        return self.eval(expr, scope)

    def count_layer_calls(self, expr: Tree, scope: Scope) -> int:
        count = 0
        stack = [expr]
        while stack:
            node = stack.pop()
            if not isinstance(node, Tree):
                continue
            if node.data in ("call", "bare_stage"):
                kind = self.callee_kind(self.dotted(node.children[0]), scope)
                if kind in ("layer", "block"):
                    count += 1
            if node.data == "repeat":
                count += 1
                stack.extend(node.children[1].children[1:])
                continue
            stack.extend(node.children)
        return count

    def callee_kind(self, name: str, scope: Scope) -> str | None:
        if self.find_block(name, scope) is not None:
            return "block"
        op = registry.lookup(name)
        if op is None or not op.user:
            return None
        return "layer" if op.layer else "op"

    def dotted(self, tree: Tree) -> str:
        return ".".join(str(t) for t in tree.children)

    def eval(self, tree: Tree | Token, scope: Scope) -> Any:
        if isinstance(tree, Token):
            raise CompileError(f"unexpected {tree}", scope.module.loc(tree))
        method = getattr(self, "ev_" + tree.data, None)
        if method is None:
            raise CompileError(f"unsupported expression '{tree.data}'", scope.module.loc(tree))
        return method(tree, scope)

    def ev_number(self, tree: Tree, scope: Scope) -> int | float:
        text = str(tree.children[0])
        if all(c.isdigit() for c in text):
            return self.int_literal(tree.children[0], scope)
        value = float(text)
        if value == float("inf"):
            raise CompileError(f"number {text[:30]} is out of range", scope.module.loc(tree))
        return value

    def ev_string(self, tree: Tree, scope: Scope) -> str:
        return str(tree.children[0])[1:-1]

    def ev_true(self, tree: Tree, scope: Scope) -> bool:
        return True

    def ev_false(self, tree: Tree, scope: Scope) -> bool:
        return False

    def ev_none(self, tree: Tree, scope: Scope) -> None:
        return None

    def ev_list(self, tree: Tree, scope: Scope) -> list[Any]:
        return [self.eval(c, scope) for c in tree.children if c is not None]

    def ev_name(self, tree: Tree, scope: Scope) -> Any:
        tok = tree.children[0].children[0]
        if len(tree.children[0].children) > 1:
            raise CompileError(f"'{self.dotted(tree.children[0])}' is not a value", scope.module.loc(tree))
        return self.lookup(tok, scope)

    def lookup(self, tok: Token, scope: Scope) -> Any:
        name = str(tok)
        if name in scope.env:
            return scope.env[name]
        if name in self.dims:
            return self.dims[name]
        if name in self.symbols:
            return sym(name)
        kind = self.callee_kind(name, scope)
        if kind is not None:
            raise CompileError(f"'{name}' is {'a block' if kind == 'block' else 'an op'}; call it: {name}(...)",
                               scope.module.loc(tok))
        hint = difflib.get_close_matches(name, list(scope.env), n=1)
        suffix = f"; did you mean '{hint[0]}'?" if hint else ""
        raise CompileError(f"undefined name '{name}'{suffix}", scope.module.loc(tok))

    def ev_cond_expr(self, tree: Tree, scope: Scope) -> Any:
        """`a if cond else b`, decided at compile time: only the chosen branch is elaborated, so the other one
        creates no nodes and no parameters (an identity or a projection shortcut in one residual block)."""
        then_t, cond_t, else_t = tree.children
        cond = self.eval(cond_t, scope)
        if not isinstance(cond, bool):
            what = "a tensor (use where() to select elementwise)" if isinstance(cond, TensorVal) else repr(cond)
            raise CompileError(f"the condition of 'if' must be a compile-time true/false, got {what}",
                               scope.module.loc(cond_t))
        return self.eval(then_t if cond else else_t, scope)

    def ev_neg(self, tree: Tree, scope: Scope) -> Any:
        value = self.eval(tree.children[0], scope)
        if isinstance(value, TensorVal):
            self.set_context(scope.module.loc(tree), scope, None)
            return TensorVal(self.b.op1("neg", value.v))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value
        raise CompileError(f"cannot negate {value!r}", scope.module.loc(tree))

    def ev_binop(self, tree: Tree, scope: Scope) -> Any:
        left_t, op_tok, right_t = tree.children
        left, right = self.eval(left_t, scope), self.eval(right_t, scope)
        loc = scope.module.loc(op_tok)
        from .arith import binary
        try:
            self.set_context(loc, scope, None)
            return binary(self.b, str(op_tok), left, right)
        except ShapeError as e:
            raise CompileError(f"'{op_tok}': {e}", loc, self.path_notes(scope)) from None

    def set_context(self, loc: Loc, scope: Scope, layer: str | None) -> None:
        """Where the nodes built next come from: source location, layer name, block call path."""
        self.b.loc = loc
        self.b.scope = scope.prefix + layer if layer else scope.prefix.rstrip(".")
        self.b.notes = self.path_notes(scope)

    def path_notes(self, scope: Scope) -> tuple[str, ...]:
        return (f"in block call path: {' > '.join(scope.path)}",) if scope.path else ()

    # ---- calls ----

    def ev_call(self, tree: Tree, scope: Scope, piped: Any = None, has_piped: bool = False,
                name_override: str | None = None) -> Any:
        name_tree, *arg_trees = tree.children
        name = self.dotted(name_tree)
        pos: list[Any] = [piped] if has_piped else []
        kwargs: dict[str, Any] = {}
        kw_locs: dict[str, Loc] = {}
        for arg in arg_trees:
            if arg is None:
                continue
            first, second = arg.children
            if second is None:
                if kwargs:
                    raise CompileError("positional argument after a keyword argument", scope.module.loc(arg))
                pos.append(self.eval(first, scope))
                continue
            if first.data != "name" or len(first.children[0].children) != 1:
                raise CompileError("a keyword argument needs a plain name before '='", scope.module.loc(arg))
            key = str(first.children[0].children[0])
            if key in kwargs:
                raise CompileError(f"duplicate keyword argument '{key}'", scope.module.loc(first))
            kwargs[key] = self.eval(second, scope)
            kw_locs[key] = scope.module.loc(first)
        loc = scope.module.loc(name_tree)
        block = self.find_block(name, scope)
        if block is not None:
            return self.call_block(block, pos, kwargs, loc, scope, name_override)
        op = registry.lookup(name)
        if op is None or not op.user:
            candidates = [n for n, o in registry.all_ops().items() if o.user] + list(scope.module.blocks)
            hint = difflib.get_close_matches(name, candidates, n=1)
            suffix = f"; did you mean '{hint[0]}'?" if hint else ""
            raise CompileError(f"unknown op '{name}'{suffix}", loc)
        return self.call_op(op, pos, kwargs, loc, kw_locs, scope, name_override)

    def find_block(self, name: str, scope: Scope) -> BlockDef | None:
        if "." in name:
            ns, _, rest = name.partition(".")
            module = scope.module.namespaces.get(ns)
            return module.blocks.get(rest) if module is not None and "." not in rest else None
        return scope.module.blocks.get(name)

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
        self.set_context(loc, scope, None)
        explicit_name = kwargs.pop("name", None) if op.layer else None
        share = kwargs.pop("share", None) if op.layer else None
        tensors, attrs = self.bind_arguments(op, pos, kwargs, loc, kw_locs, scope)
        try:
            if op.expand is None:
                outs = self.b.op(op.name, [t.v for t in tensors], **attrs)
                return TensorVal(outs[0]) if len(outs) == 1 else tuple(TensorVal(o) for o in outs)
            # Composite ops (losses) expand like layers but own no parameters, so they take no name.
            lname = (name_override or self.layer_name(scope, op.name, explicit_name, loc)) if op.layer else op.name
            if op.layer:
                self.set_context(loc, scope, lname)
            ctx = _LayerCtx(self, scope, lname, share, loc)
            full = op.bind_attrs(attrs)
            outs = op.expand(self.b, ctx, [t.v for t in tensors], full)
            return TensorVal(outs[0]) if len(outs) == 1 else tuple(TensorVal(o) for o in outs)
        except ShapeError as e:
            raise CompileError(f"{op.name}: {e}", loc, self.path_notes(scope)) from None

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
        for key, value in attrs.items():
            spec = op.attr_spec(key)
            if spec is not None and spec.kind == "dtype" and value == "f32" and self.dtype == "f64":
                attrs[key] = "f64"  # f64 mode runs every f32 tensor in double, casts included
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
                env[pname] = self.eval(default, Scope(block.module, {}, prefix, inner.path, inner.depth))
            self.check_param_type(block, pname, ptype, env[pname], loc)
        result: Any = None
        stmts = [s for s in block.body.children if isinstance(s, Tree)]
        for i, stmt in enumerate(stmts):
            if stmt.data == "return_stmt":
                if i != len(stmts) - 1:
                    raise CompileError("return must be the last statement of a block", block.module.loc(stmt))
                values = [self.eval_statement(e, inner, None) for e in stmt.children]
                result = values[0] if len(values) == 1 else tuple(values)
            else:
                self.statement(stmt, inner)
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
        value = self.eval(left_t, scope)
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
        count = self.int_literal(count_tok, scope)
        if not 1 <= count <= 1024:
            raise CompileError(f"repeat count must be between 1 and 1024, got {count}", scope.module.loc(count_tok))
        name = self.dotted(call.children[0])
        base = self.layer_name(scope, name, None, scope.module.loc(tree))
        value = piped
        if not has_piped:
            args = [a for a in call.children[1:] if a is not None]
            if not args or args[0].children[1] is not None:
                raise CompileError("repeat needs the first argument of the call as its input",
                                   scope.module.loc(call))
            value = self.eval(args[0].children[0], scope)
            call = Tree("call", [call.children[0], *args[1:]], call.meta)
        for i in range(count):
            value = self.ev_call(call, scope, value, True, name_override=f"{base}.{i}")
        return value


class _LayerCtx:
    """What a layer's expand rule sees: parameters by local name, dropout salts."""

    def __init__(self, el: Elaborator, scope: Scope, name: str, share: Any, loc: Loc):
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
        self.el._salt += 1
        return self.el._salt


def elaborate(module: Module, dims: Mapping[str, int] | None = None, dtype: str = "f32") -> Elaborated:
    if dtype not in ("f32", "f64"):
        raise ValueError(f"dtype must be 'f32' or 'f64', got {dtype!r}")
    return Elaborator(module, dims, dtype).run()


__all__ = ["elaborate", "Elaborated", "TensorVal", "Sym"]
