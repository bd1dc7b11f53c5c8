"""Reads a model's `train { ... }` block, and the same settings given from Python, into a recipe.

The front end knows how a setting is *written* (its form: a tensor expression, a list of metrics, a call such
as `adam(lr=1e-3)`, a literal value, a list of `phase(...)` calls); the caller's table of settings (the
training recipe's, training/recipe.py) says what each one *means*: one function per key checks a Python value
and sets it on the spec, whether the value comes from the block or from `configure()`. Errors in the block
are reported at their source location.

Any other assignment in the block defines a tensor (a term of the loss, say), whatever its name resembles;
one whose value is not a tensor is a mistyped setting, and a tensor may not take a setting's name.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace
from typing import Any, Callable, Literal, Mapping, NamedTuple

from lark import Tree

from ..errors import CompileError
from .calls import call_arguments, dotted
from .elaborate import Elaborated
from .modules import Module
from .parser import parse
from .values import Scope, TensorVal

# How a setting is written: "tensor" an expression (the loss), "metrics" a list of scalar tensors, "inputs" a
# list of model inputs (by name from Python), "call" name(keyword=value, ...), "value" a literal, "phases" a
# list of phase("name", key=value, ...) whose keys the setting's `fields` give.
Form = Literal["tensor", "scalar", "metrics", "inputs", "call", "value", "phases"]


class Call(NamedTuple):
    """A setting written as a call, `adam(lr=1e-3)`: what a "call" setting's function receives from the block
    (configure() may give other forms, such as ("adam", {"lr": 1e-3}), which this tuple also is)."""

    name: str
    kwargs: dict[str, Any]


class Phase(NamedTuple):
    """One phase("name", key=value, ...) of a "phases" setting, each value read by its field's form."""

    name: str
    values: dict[str, Any]


@dataclass(frozen=True)
class Setting:
    form: Form
    apply: Callable[[Any, Any], None]  # (spec, value): checks the value (ValueError) and sets it on the spec
    calls: tuple[str, ...] = ()  # names of the calls that write it (`adam` for optimizer), for hints
    fields: Mapping[str, Form] | None = None  # "phases": the keywords of each phase and their forms


class TensorForValueError(ValueError):
    """A tensor expression where a setting takes a literal value (a number, a string, a list)."""


class TrainBlockReader:
    """Interprets the train block inside the model's top-level scope, so it can name any model tensor. It
    reads into a fork of the elaborated model (the block adds nodes): `graph()` is the model with them."""

    def __init__(self, el: Elaborated, settings: Mapping[str, Setting], misplaced: Mapping[str, str]):
        self.el = el.fork()
        self.elab = self.el.elaborator
        self.scope: Scope = self.el.train_scope  # type: ignore[assignment]
        self.settings = settings
        self.misplaced = misplaced  # names that are no setting, with where their value belongs

    def read(self, spec: Any, overrides: Mapping[str, Any]) -> Any:
        """Applies the block's settings to `spec` in order, then `overrides` (Python values)."""
        body, module = self.el.train, self.scope.module
        if body is not None:
            for stmt in body.children:
                if not isinstance(stmt, Tree):
                    continue
                if stmt.data != "assign" or len(stmt.children) != 2:
                    raise CompileError("a train block holds assignments (key = value)", module.loc(stmt))
                target, expr = stmt.children
                key = str(target)
                if key in self.settings:
                    try:
                        self.settings[key].apply(spec, self.read_form(self.settings[key], key, key, expr))
                    except TensorForValueError as e:  # `l1 = mean(abs(h))`: a term under a setting's name
                        raise CompileError(f"'{key}' is a training setting, not a tensor; give this term another "
                                           f"name (e.g. '{key}_term')", module.loc(target)) from e
                    except ValueError as e:
                        raise CompileError(str(e), module.loc(expr)) from None
                else:
                    self.local_tensor(stmt, target, expr)
        for key, value in overrides.items():
            self.override(spec, key, value)
        return spec

    def graph_builder(self) -> Any:
        """The builder holding the model plus what the block added (its loss and metric nodes)."""
        return self.el.builder

    def override(self, spec: Any, key: str, value: Any) -> None:
        """Applies one setting given as a Python value (configure()); the loss and metrics as .dlm text."""
        setting = self.settings.get(key)
        if setting is None:
            hint = difflib.get_close_matches(key, self.settings, n=1)
            raise ValueError(f"unknown training setting '{key}'" + (f"; did you mean '{hint[0]}'?" if hint else ""))
        if setting.form == "phases":
            raise ValueError("phases are declared in the train block")
        if setting.form in ("tensor", "metrics"):
            value = self.expression_override(setting, key, value)
        elif setting.form == "inputs":
            value = self.input_names_given(key, value)
        setting.apply(spec, value)

    # ---- forms ----

    def read_form(self, setting: Setting, key: str, target: str, expr: Tree) -> Any:
        """The value `expr` writes in the setting's form; `target` names a tensor expression's layers."""
        form = setting.form
        if form in ("tensor", "scalar"):
            value = self.elab.eval_statement(expr, self.scope, target)
            if not isinstance(value, TensorVal) or (form == "scalar" and self.elab.b.type_of(value.v).shape != ()):
                raise ValueError(f"{key} must be a {'scalar tensor' if form == 'scalar' else 'tensor expression'}")
            return value.v
        if form == "metrics":
            return self.metrics(expr)
        if form == "inputs":
            return self.input_names(key, expr)
        if form == "call":
            return self.call(expr)
        if form == "phases":
            return self.phases(setting, key, expr)
        value = self.elab.eval(expr, self.scope)
        if isinstance(value, TensorVal):
            raise TensorForValueError(f"{key} is a value (a number, a string or a list), not a tensor")
        return value

    def call(self, expr: Tree) -> Call:
        if expr.data != "call":
            raise ValueError("expected a call such as adam(lr=1e-3)")
        name = dotted(expr.children[0])
        args = call_arguments(expr, self.scope.module, f"{name} takes keyword arguments only, e.g. {name}(lr=0.01)")
        return Call(name, {a.key: self.elab.eval(a.value, self.scope) for a in args})

    def metrics(self, expr: Tree) -> list[tuple[str, int]]:
        if expr.data != "list":
            raise ValueError("metrics is a list, e.g. metrics = [accuracy(logits, y)]")
        out: list[tuple[str, int]] = []
        for item in expr.children:
            if item is None:
                continue
            name = self.metric_name(item, {n for n, _ in out})
            value = self.elab.eval_statement(item, self.scope, None)
            if not isinstance(value, TensorVal) or self.elab.b.type_of(value.v).shape != ():
                raise ValueError(f"metric '{name}' must be a scalar tensor")
            out.append((name, value.v))
        return out

    def metric_name(self, item: Tree, taken: set[str]) -> str:
        base = (str(item.children[0].children[0]) if item.data == "name"
                else dotted(item.children[0]) if item.data == "call" else "metric")
        name, k = base, 1
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        return name

    def input_names(self, key: str, expr: Tree) -> list[str]:
        if expr.data != "list":
            raise ValueError(f"{key} is a list of input names, e.g. {key} = [x]")
        by_value = {v: n for n, v in self.elab.b.inputs}
        names = []
        for item in expr.children:
            value = self.elab.eval(item, self.scope)
            if not isinstance(value, TensorVal) or value.v not in by_value:
                raise ValueError(f"{key} lists model inputs")
            names.append(by_value[value.v])
        return names

    def input_names_given(self, key: str, value: Any) -> list[str]:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{key} must be a list of names")
        known = [n for n, _ in self.elab.b.inputs]
        for v in value:
            if v not in known:
                raise ValueError(f"{key}: '{v}' is not a model input ({', '.join(known)})")
        return list(value)

    def phases(self, setting: Setting, key: str, expr: Tree) -> list[Phase]:
        if expr.data != "list" or not [c for c in expr.children if c is not None]:
            raise ValueError(f'{key} is a list of phase("name", loss=..., params=[...], optimizer=...) calls')
        return [self.phase(setting.fields or {}, item) for item in expr.children if item is not None]

    def phase(self, fields: Mapping[str, Form], expr: Tree) -> Phase:
        """phase("name", key=value, ...), each value read by its field's form."""
        if expr.data != "call" or dotted(expr.children[0]) != "phase":
            raise ValueError('each phase is phase("name", loss=..., params=[...], optimizer=...)')
        args = call_arguments(expr, self.scope.module)
        if not args or args[0].key is not None:
            raise ValueError('a phase needs its name first: phase("generator", ...)')
        name = self.elab.eval(args[0].value, self.scope)
        if not isinstance(name, str) or not name:
            raise ValueError("a phase's name is a non-empty string")
        values: dict[str, Any] = {}
        for arg in args[1:]:
            if arg.key is None:
                raise ValueError(f"phase {name!r}: give {', '.join(f'{k}=' for k in fields)} by keyword")
            if arg.key not in fields:
                raise ValueError(f"phase {name!r}: unknown setting '{arg.key}' (it takes: {', '.join(fields)})")
            values[arg.key] = self.read_form(Setting(fields[arg.key], _read_only), f"phase {name!r}: the {arg.key}",
                                             f"{name}_{arg.key}", arg.value)
        return Phase(name, values)

    # ---- everything else ----

    def local_tensor(self, stmt: Tree, target: Any, expr: Tree) -> None:
        """Any other assignment must define a tensor (a term of the loss, say), whatever its name resembles
        (`loss_a`); one whose value is a setting's (a number, a list, `adam(...)`) is a mistyped setting,
        reported where it is written, with a "did you mean"."""
        key, loc = str(target), self.scope.module.loc(target)
        hint = difflib.get_close_matches(key, self.settings, n=1, cutoff=0.75)
        mistyped = f"unknown training setting '{key}'; did you mean '{hint[0]}'?" if hint else None
        if key in self.misplaced:
            raise CompileError(f"unknown training setting '{key}'; {self.misplaced[key]}", loc)
        if expr.data == "call":
            name = dotted(expr.children[0])
            for setting_key, setting in self.settings.items():
                if name in setting.calls:
                    raise CompileError(mistyped or f"unknown training setting '{key}'; did you mean "
                                                   f"'{setting_key} = {name}(...)'?", loc)
        self.elab.statement(stmt, self.scope)
        if not isinstance(self.scope.env.get(key), TensorVal):
            raise CompileError(mistyped or f"unknown training setting '{key}' (settings: {', '.join(self.settings)}); "
                                           f"other assignments in a train block define tensors", loc)

    def expression_override(self, setting: Setting, key: str, value: Any) -> Any:
        """loss/metrics given from Python as .dlm expression text, e.g. configure(loss="mse(out, target)")."""
        texts = [value] if setting.form == "tensor" else list(value)
        trees = []
        source = ""
        for text in texts:
            if not isinstance(text, str):
                raise ValueError(f"{key} overrides are .dlm expressions given as strings")
            source = f"{'loss' if key == 'loss' else 'metric'} = {text}\n"  # shown as written in errors
            trees.append(parse(source, f"<{key}>").children[0].children[1])
        # Same names as the model's top level (the env dict is shared), locations in the override text.
        outer = self.scope
        self.scope = replace(outer, module=Module(f"<{key}>", source, Tree("start", [])))
        try:
            return self.read_form(setting, key, key, trees[0] if setting.form == "tensor" else Tree("list", trees))
        finally:
            self.scope = outer


def _read_only(spec: Any, value: Any) -> None:
    """A phase's fields are only read here; the table's "phases" setting checks them together."""
