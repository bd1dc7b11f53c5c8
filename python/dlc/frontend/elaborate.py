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

import copy
import difflib
from dataclasses import dataclass, replace
from typing import Any, Mapping

from lark import Token, Tree

from .. import initializers
from ..dims import Dim, Sym, sym
from ..errors import CompileError, Loc, ShapeError
from ..ir import DTYPES, Graph, GraphBuilder, TensorType
from ..ops import registry
from .calls import Calls, call_arguments, dotted, find_block
from .modules import Module
from .values import Scope, TensorVal

MAX_INT_LITERAL = 2 ** 53
# Nodes one model may elaborate to (repeats and block calls included): far above any real network, and low
# enough that a file which would exceed it (repeat 1024 of a block that repeats 1024) is refused in a second.
MAX_NODES = 20_000
MAX_PARAM_ELEMENTS = 2 ** 31  # 8 GiB of f32: beyond it an initializer would only fail with MemoryError


@dataclass
class Elaborated:
    graph: Graph
    train: Tree | None  # the train { } block, interpreted by the training front end
    train_scope: Scope | None
    builder: GraphBuilder
    elaborator: "Elaborator"

    def fork(self) -> "Elaborated":
        """A copy to read the train block into: reading it adds nodes, names and parameters (a loss's own
        layers), so the elaborated model stays as elaborated, shared by every use of its binding."""
        scope = self.train_scope
        if scope is not None:
            scope = replace(scope, env=dict(scope.env), used_names=dict(scope.used_names))
        el = self.elaborator.fork()
        return Elaborated(self.graph, self.train, scope, el.b, el)


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
        self.calls = Calls(self)

    def fork(self) -> "Elaborator":
        """An independent elaborator in this one's state (see Elaborated.fork)."""
        other = copy.copy(self)
        other.b = self.b.copy()
        other.symbols, other.param_types = set(self.symbols), dict(self.param_types)
        other.param_values = dict(self.param_values)
        other.calls = Calls(other)
        return other

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
            else:
                self.statement(stmt, scope)
            self.check_node_budget(len(self.b.nodes), self.root.loc(stmt), scope)
        if not outputs:
            library = " or, for a file of blocks, check it with `dlc check --lib`" if self.root.blocks else ""
            raise CompileError(f"the model declares no output (add `output NAME`{library})",
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

    def check_node_budget(self, nodes: int, loc: Loc, scope: Scope) -> None:
        if nodes > MAX_NODES:
            raise CompileError(f"the model elaborates to more than {MAX_NODES:,} nodes ({nodes:,} here); "
                               "use fewer or smaller repeats", loc, self.path_notes(scope))

    def statement(self, stmt: Tree, scope: Scope) -> Any:
        self.check_node_budget(len(self.b.nodes), scope.module.loc(stmt), scope)
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
        self.set_context(scope.module.loc(name_tok), scope, None)
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
                args = call_arguments(tree, scope.module, "initializer arguments are keywords, e.g. normal(std=0.02)")
                return initializers.make_spec(self.dotted(tree.children[0]),
                                              {a.key: self.eval(a.value, scope) for a in args})
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
        if find_block(name, scope) is not None:
            return "block"
        op = registry.lookup(name)
        if op is None or not op.user:
            return None
        return "layer" if op.layer else "op"

    def dotted(self, tree: Tree) -> str:
        return dotted(tree)

    def eval(self, tree: Tree | Token, scope: Scope) -> Any:
        if isinstance(tree, Token):
            raise CompileError(f"unexpected {tree}", scope.module.loc(tree))
        method = getattr(self, "ev_" + tree.data, None)
        if method is None:
            raise CompileError(f"unsupported expression '{tree.data}'", scope.module.loc(tree))
        return method(tree, scope)

    def ev_call(self, tree: Tree, scope: Scope) -> Any:
        return self.calls.ev_call(tree, scope)

    def ev_pipe(self, tree: Tree, scope: Scope) -> Any:
        return self.calls.ev_pipe(tree, scope)

    def ev_repeat(self, tree: Tree, scope: Scope) -> Any:
        return self.calls.ev_repeat(tree, scope)

    def next_salt(self) -> int:
        """A fresh salt for a dropout mask, so two dropout layers draw different masks."""
        self._salt += 1
        return self._salt

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
            return self.param_reference(self.dotted(tree.children[0]), scope, scope.module.loc(tree))
        return self.lookup(tok, scope)

    def param_reference(self, dotted: str, scope: Scope, loc: Loc) -> TensorVal:
        """`tok.weight` names a parameter of a layer defined earlier in this scope (an output head tied to an
        embedding). It is the parameter's own value, so gradients from every use add up."""
        full = scope.prefix + dotted
        if full in self.param_values:
            return TensorVal(self.param_values[full])
        local = [n[len(scope.prefix):] for n in self.param_values if n.startswith(scope.prefix)]
        hint = difflib.get_close_matches(dotted, local, n=1)
        suffix = f"; did you mean '{hint[0]}'?" if hint else ""
        raise CompileError(f"'{dotted}' is neither a value nor a parameter defined so far{suffix}", loc)

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


def elaborate(module: Module, dims: Mapping[str, int] | None = None, dtype: str = "f32") -> Elaborated:
    if dtype not in ("f32", "f64"):
        raise ValueError(f"dtype must be 'f32' or 'f64', got {dtype!r}")
    return Elaborator(module, dims, dtype).run()


__all__ = ["elaborate", "Elaborated", "TensorVal", "Sym"]
