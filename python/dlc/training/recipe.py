"""The training recipe: what a `train { ... }` block declares, and what Python may override.

    train {
        loss = cross_entropy(logits, y) + 0.1 * mse(recon, x)   # any scalar expression
        metrics = [accuracy(logits, y)]
        optimizer = adam(lr=1e-3, weight_decay=1e-4)            # sgd, adam, adamw, rmsprop, adagrad
        schedule = cosine(steps=2000, warmup=100)               # constant, step, exponential, cosine
        clip_norm = 1.0                                         # clip_value = 0.5
        l2 = 1e-4                                               # l1 = ...; regularize = ["h1", "h2"]
        freeze = ["encoder"]                                    # name prefixes; batch-norm state included
        lr_mult = [["head", 10.0]]
        input_grads = [x]                                       # gradients w.r.t. inputs (saliency)
        epochs = 20
        batch_size = 64
        early_stopping = early_stopping(patience=5, monitor="val_loss", restore_best=true)
        augment = augment(crop=2, flip=true, rotate=10, scale=0.1)   # image batches (NCHW), seeded
        on_nonfinite = "error"                                  # or "skip": a NaN/inf loss or gradient
        adversarial = pgd(eps=0.1, steps=7, clip=[0, 1])               # or fgsm(eps=0.1, clean_fraction=0.5)
        init = load_params(path="pre.ckpt", include=["backbone"])      # before the first step; path from the file
    }

Other assignments in the block define tensors (intermediate terms of the loss, for example); one whose name
looks like a setting (`epoch`, `batchsize`, `optimiser`) or whose value is not a tensor (`learning_rate = 0.1`)
is an error at its source location, with a "did you mean".

A recipe may instead declare phases that take turns, each with its own loss, parameters, optimizer, schedule
and number of steps per round (a GAN's discriminator and generator):

    phases = [
        phase("discriminator", loss=disc_loss, params=["disc"], optimizer=adam(lr=2e-4, beta1=0.5)),
        phase("generator", loss=gen_loss, params=["gen"], optimizer=adam(lr=2e-4, beta1=0.5), steps=1),
    ]
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from lark import Tree

from ..errors import CompileError
from ..frontend.elaborate import Elaborated
from ..frontend.values import Scope, TensorVal
from ..frontend.modules import Module
from ..frontend.parser import parse
from ..augment import Augment
from ..ops.optim import OPTIMIZERS
from .adversarial import Attack, as_attack, make_attack

SCHEDULES: dict[str, dict[str, float]] = {
    "constant": {"warmup": 0},
    "step": {"every": 1000, "gamma": 0.1, "warmup": 0},
    "exponential": {"gamma": 0.999, "warmup": 0},
    "cosine": {"steps": 1000, "min_lr": 0.0, "warmup": 0},
}
EARLY_STOPPING = {"patience": 5, "monitor": "val_loss", "min_delta": 0.0, "restore_best": True, "mode": "auto"}
OPTIMIZER_NAMES = (*OPTIMIZERS, "adamw")
CONFIG_KEYS = ("optimizer", "schedule", "clip_norm", "clip_value", "l1", "l2", "regularize", "freeze", "lr_mult",
               "input_grads", "epochs", "batch_size", "early_stopping", "metrics", "loss", "augment", "on_nonfinite",
               "adversarial", "init", "phases")
PHASE_KEYS = ("loss", "params", "optimizer", "schedule", "steps", "clip_norm")


@dataclass(frozen=True)
class OptimizerConfig:
    name: str  # sgd | adam | rmsprop | adagrad (adamw is adam with decoupled weight decay)
    lr: float
    hyper: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class PhaseSpec:
    """One phase of a multi-phase recipe: it trains the parameters `params` selects (name prefixes, or
    globs such as "disc.*.weight") on its own loss, with its own optimizer and schedule, for `steps`
    consecutive steps of each round."""

    name: str
    loss: int
    params: tuple[str, ...]
    optimizer: OptimizerConfig
    schedule: tuple[str, dict[str, float]] = ("constant", {"warmup": 0})
    steps: int = 1
    clip_norm: float = 0.0


@dataclass
class TrainSpec:
    loss: int | None = None
    metrics: list[tuple[str, int]] = field(default_factory=list)
    optimizer: OptimizerConfig = field(default_factory=lambda: make_optimizer("adam", {}))
    schedule: tuple[str, dict[str, float]] = ("constant", {"warmup": 0})
    clip_norm: float = 0.0
    clip_value: float = 0.0
    l1: float = 0.0
    l2: float = 0.0
    regularize: list[str] | None = None  # name prefixes; None: every parameter named *.weight
    freeze: list[str] = field(default_factory=list)
    lr_mult: list[tuple[str, float]] = field(default_factory=list)
    input_grads: list[str] = field(default_factory=list)
    epochs: int | None = None
    batch_size: int | None = None
    early_stopping: dict[str, Any] | None = None
    augment: Augment | None = None
    on_nonfinite: str = "error"  # a NaN/inf loss or gradient: "error" stops naming the step, "skip" skips it
    adversarial: Attack | None = None
    init: dict[str, Any] | None = None  # load_params arguments applied before the first step (transfer learning)
    phases: list[PhaseSpec] = field(default_factory=list)
    # Set on the recipe of one phase (for_phase): its name, which prefixes its optimizer state, and the
    # parameters it trains (None: all but the frozen ones).
    phase: str | None = None
    select: tuple[str, ...] | None = None


def for_phase(spec: TrainSpec, name: str) -> TrainSpec:
    """The single-phase recipe one phase of `spec` trains with: its loss, parameters, optimizer, schedule."""
    ph = next((p for p in spec.phases if p.name == name), None)
    if ph is None:
        raise ValueError(f"no phase '{name}' (the recipe has: {', '.join(p.name for p in spec.phases)})")
    return replace(spec, loss=ph.loss, optimizer=ph.optimizer, schedule=ph.schedule,
                   clip_norm=ph.clip_norm or spec.clip_norm, phases=[], phase=ph.name, select=ph.params)


def phase_at(spec: TrainSpec, step: int) -> tuple[PhaseSpec, int]:
    """The phase that takes optimizer step `step` (0-based, counting every phase's steps) and how many steps
    that phase has taken before it: rounds give each phase its `steps` in order, so both follow from the
    global counter alone (a checkpoint mid-round resumes exactly)."""
    round_len = sum(p.steps for p in spec.phases)
    rounds, offset = divmod(step, round_len)
    for ph in spec.phases:
        if offset < ph.steps:
            return ph, rounds * ph.steps + offset
        offset -= ph.steps
    raise AssertionError("unreachable: offset < round length")


def make_optimizer(name: str, kwargs: Mapping[str, Any]) -> OptimizerConfig:
    kwargs = dict(kwargs)
    decoupled = name == "adamw"
    base = "adam" if decoupled else name
    if base not in OPTIMIZERS:
        hint = ([n for n in OPTIMIZER_NAMES if n == name.lower()]
                or difflib.get_close_matches(name, OPTIMIZER_NAMES, n=1))
        raise ValueError(f"unknown optimizer '{name}'" + (f"; did you mean '{hint[0]}'?" if hint else "")
                         + " (use sgd, adam, adamw, rmsprop or adagrad)")
    defaults = dict(OPTIMIZERS[base][1])
    if decoupled:
        defaults["decoupled"] = 1.0
        defaults["weight_decay"] = 0.01
    lr = kwargs.pop("lr", 1e-3 if base in ("adam", "rmsprop") else 1e-2)
    if "betas" in kwargs:
        betas = kwargs.pop("betas")
        if not isinstance(betas, (list, tuple)) or len(betas) != 2:
            raise ValueError("betas must be a pair, e.g. betas=[0.9, 0.999]")
        kwargs["beta1"], kwargs["beta2"] = betas
    for key, value in kwargs.items():
        if key not in defaults or key == "decoupled":
            known = ", ".join(["lr", *(k for k in defaults if k != "decoupled"), *(["betas"] if base == "adam" else [])])
            raise ValueError(f"{name} takes no argument '{key}' (it takes: {known})")
        if isinstance(value, bool):
            value = float(value)
        if not isinstance(value, (int, float)):
            raise ValueError(f"{name}: '{key}' must be a number, got {value!r}")
        defaults[key] = float(value)
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or lr < 0:
        raise ValueError(f"{name}: lr must be a non-negative number, got {lr!r}")
    return OptimizerConfig(base, float(lr), tuple(defaults.items()))


def make_schedule(name: str, kwargs: Mapping[str, Any]) -> tuple[str, dict[str, float]]:
    if name not in SCHEDULES:
        hint = [n for n in SCHEDULES if n == name.lower()] or difflib.get_close_matches(name, SCHEDULES, n=1)
        raise ValueError(f"unknown schedule '{name}'" + (f"; did you mean '{hint[0]}'?" if hint else "")
                         + f" (use {', '.join(SCHEDULES)})")
    out = dict(SCHEDULES[name])
    for key, value in kwargs.items():
        if key not in out:
            raise ValueError(f"schedule {name} takes no argument '{key}' (it takes: {', '.join(out)})")
        out[key] = float(value)
    return name, out


def make_init(value: Mapping[str, Any]) -> dict[str, Any]:
    """Checks the arguments of the recipe's `init = load_params(...)` (see training/transfer.py)."""
    if not isinstance(value, Mapping) or not isinstance(value.get("path"), str):
        raise ValueError('init needs the checkpoint: load_params(path="pre.ckpt", ...)')
    known = ("path", "include", "exclude", "rename", "strict")
    out: dict[str, Any] = {"path": value["path"], "include": None, "exclude": [], "rename": [], "strict": True}
    for key, item in value.items():
        if key not in known:
            raise ValueError(f"load_params takes no argument '{key}' (it takes: {', '.join(known)})")
        if key in ("include", "exclude") and item is not None and (
                not isinstance(item, (list, tuple)) or not all(isinstance(v, str) for v in item)):
            raise ValueError(f"load_params: {key} is a list of names or globs")
        if key == "rename":
            pairs = list(item.items()) if isinstance(item, Mapping) else [tuple(p) for p in item]
            if not all(len(p) == 2 and all(isinstance(v, str) for v in p) for p in pairs):
                raise ValueError("load_params: rename is a list of [old_prefix, new_prefix] pairs")
            item = pairs
        if key == "strict" and not isinstance(item, bool):
            raise ValueError("load_params: strict is true or false")
        out[key] = list(item) if key in ("include", "exclude") and item is not None else item
    return out


def make_early_stopping(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(EARLY_STOPPING)
    for key, value in kwargs.items():
        if key not in out:
            raise ValueError(f"early_stopping takes no argument '{key}' (it takes: {', '.join(out)})")
        out[key] = value
    return out


class RecipeReader:
    """Interprets the train block inside the model's top-level scope, so it can name any model tensor."""

    def __init__(self, el: Elaborated):
        self.el = el
        self.elab = el.elaborator
        self.scope: Scope = el.train_scope  # type: ignore[assignment]

    def read(self, overrides: Mapping[str, Any]) -> TrainSpec:
        spec = TrainSpec()
        body = self.el.train
        if body is not None:
            for stmt in body.children:
                if not isinstance(stmt, Tree):
                    continue
                if stmt.data != "assign" or len(stmt.children) != 2:
                    raise CompileError("a train block holds assignments (key = value)", self.scope.module.loc(stmt))
                target, expr = stmt.children
                key = str(target)
                if key in CONFIG_KEYS:
                    try:
                        self.apply(spec, key, expr, self.scope.module)
                    except ValueError as e:
                        raise CompileError(str(e), self.scope.module.loc(expr)) from None
                else:
                    self.local_tensor(stmt, target, expr)
        for key, value in overrides.items():
            self.override(spec, key, value)
        return spec

    def local_tensor(self, stmt: Tree, target: Any, expr: Tree) -> None:
        """Any other assignment must define a tensor (a term of the loss, say); a name that looks like a setting
        or a value that is not a tensor is a mistyped setting, reported where it is written."""
        key, loc = str(target), self.scope.module.loc(target)
        hint = difflib.get_close_matches(key, CONFIG_KEYS, n=1, cutoff=0.75)
        if hint:
            raise CompileError(f"unknown training setting '{key}'; did you mean '{hint[0]}'?", loc)
        if key in ("lr", "learning_rate"):
            raise CompileError(f"unknown training setting '{key}'; the learning rate is an optimizer argument, "
                               f"e.g. optimizer = adam(lr=0.001)", loc)
        if expr.data == "call" and self.elab.dotted(expr.children[0]) in (*OPTIMIZER_NAMES, *SCHEDULES):
            name = self.elab.dotted(expr.children[0])
            setting = "optimizer" if name in OPTIMIZER_NAMES else "schedule"
            raise CompileError(f"unknown training setting '{key}'; did you mean '{setting} = {name}(...)'?", loc)
        self.elab.statement(stmt, self.scope)
        if not isinstance(self.scope.env.get(key), TensorVal):
            raise CompileError(f"unknown training setting '{key}' (settings: {', '.join(CONFIG_KEYS)}); other "
                               f"assignments in a train block define tensors", loc)

    def apply(self, spec: TrainSpec, key: str, expr: Tree, module: Module) -> None:
        if key == "loss":
            value = self.elab.eval_statement(expr, self.scope, "loss")
            if not isinstance(value, TensorVal):
                raise ValueError("loss must be a tensor expression")
            spec.loss = value.v
        elif key == "metrics":
            if expr.data != "list":
                raise ValueError("metrics is a list, e.g. metrics = [accuracy(logits, y)]")
            spec.metrics = []
            for item in expr.children:
                if item is None:
                    continue
                name = self.metric_name(item, spec)
                value = self.elab.eval_statement(item, self.scope, None)
                if not isinstance(value, TensorVal) or self.elab.b.type_of(value.v).shape != ():
                    raise ValueError(f"metric '{name}' must be a scalar tensor")
                spec.metrics.append((name, value.v))
        elif key == "input_grads":
            names = self.input_names(expr)
            spec.input_grads = names
        elif key == "phases":
            if expr.data != "list" or not [c for c in expr.children if c is not None]:
                raise ValueError('phases is a list of phase("name", loss=..., params=[...], optimizer=...) calls')
            spec.phases = [self.phase(item) for item in expr.children if item is not None]
            names = [ph.name for ph in spec.phases]
            if len(set(names)) != len(names):
                raise ValueError(f"phase names must differ, got {names}")
        elif key in ("optimizer", "schedule", "early_stopping", "augment", "adversarial", "init"):
            name, kwargs = self.config_call(expr)
            if key == "adversarial":
                spec.adversarial = make_attack(name, kwargs)
                return
            if key == "init":
                if name != "load_params":
                    raise ValueError('use load_params(path="pre.ckpt", include=[...], exclude=[...], rename=[...])')
                self.override(spec, "init", kwargs)
                return
            if key == "augment":
                if name != "augment":
                    raise ValueError("use augment(crop=..., flip=..., rotate=..., scale=...)")
                self.override(spec, "augment", kwargs)
                return
            if key == "optimizer":
                spec.optimizer = make_optimizer(name, kwargs)
            elif key == "schedule":
                spec.schedule = make_schedule(name, kwargs)
            else:
                if name != "early_stopping":
                    raise ValueError("use early_stopping(patience=..., monitor=..., restore_best=...)")
                spec.early_stopping = make_early_stopping(kwargs)
        else:
            self.override(spec, key, self.elab.eval(expr, self.scope))

    def phase(self, expr: Tree) -> PhaseSpec:
        """phase("name", loss=<tensor>, params=[...], optimizer=<call>, schedule=<call>, steps=N, clip_norm=C)"""
        if expr.data != "call" or self.elab.dotted(expr.children[0]) != "phase":
            raise ValueError('each phase is phase("name", loss=..., params=[...], optimizer=...)')
        args = [a for a in expr.children[1:] if a is not None]
        if not args or args[0].children[1] is not None:
            raise ValueError('a phase needs its name first: phase("generator", ...)')
        name = self.elab.eval(args[0].children[0], self.scope)
        if not isinstance(name, str) or not name:
            raise ValueError("a phase's name is a non-empty string")
        found: dict[str, Any] = {}
        for arg in args[1:]:
            key_tree, value = arg.children
            if value is None or key_tree.data != "name":
                raise ValueError(f"phase {name!r}: give loss=, params=, optimizer=, schedule=, steps=, clip_norm= "
                                 f"by keyword")
            key = str(key_tree.children[0].children[0])
            if key not in PHASE_KEYS:
                raise ValueError(f"phase {name!r}: unknown setting '{key}' (it takes: {', '.join(PHASE_KEYS)})")
            if key in found:
                raise ValueError(f"phase {name!r}: duplicate setting '{key}'")
            if key == "loss":
                loss = self.elab.eval_statement(value, self.scope, f"{name}_loss")
                if not isinstance(loss, TensorVal) or self.elab.b.type_of(loss.v).shape != ():
                    raise ValueError(f"phase {name!r}: the loss must be a scalar tensor")
                found[key] = loss.v
            elif key in ("optimizer", "schedule"):
                call, kwargs = self.config_call(value)
                found[key] = make_optimizer(call, kwargs) if key == "optimizer" else make_schedule(call, kwargs)
            else:
                found[key] = self.elab.eval(value, self.scope)
        for required in ("loss", "params"):
            if required not in found:
                raise ValueError(f"phase {name!r} needs {required}=")
        params = found["params"]
        if not isinstance(params, list) or not params or not all(isinstance(p, str) and p for p in params):
            raise ValueError(f"phase {name!r}: params is a list of parameter names, prefixes or globs")
        steps = found.get("steps", 1)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"phase {name!r}: steps must be a positive integer, got {steps!r}")
        clip = found.get("clip_norm", 0.0)
        if isinstance(clip, bool) or not isinstance(clip, (int, float)) or clip < 0:
            raise ValueError(f"phase {name!r}: clip_norm must be a non-negative number, got {clip!r}")
        return PhaseSpec(name, found["loss"], tuple(params), found.get("optimizer", make_optimizer("adam", {})),
                         found.get("schedule", ("constant", {"warmup": 0})), steps, float(clip))

    def metric_name(self, item: Tree, spec: TrainSpec) -> str:
        base = (str(item.children[0].children[0]) if item.data == "name"
                else self.elab.dotted(item.children[0]) if item.data == "call" else "metric")
        names = {n for n, _ in spec.metrics}
        name, k = base, 1
        while name in names:
            name, k = f"{base}_{k}", k + 1
        return name

    def input_names(self, expr: Tree) -> list[str]:
        if expr.data != "list":
            raise ValueError("input_grads is a list of input names, e.g. input_grads = [x]")
        by_value = {v: n for n, v in self.elab.b.inputs}
        names = []
        for item in expr.children:
            value = self.elab.eval(item, self.scope)
            if not isinstance(value, TensorVal) or value.v not in by_value:
                raise ValueError("input_grads lists model inputs")
            names.append(by_value[value.v])
        return names

    def config_call(self, expr: Tree) -> tuple[str, dict[str, Any]]:
        if expr.data != "call":
            raise ValueError("expected a call such as adam(lr=1e-3)")
        name = self.elab.dotted(expr.children[0])
        kwargs: dict[str, Any] = {}
        for arg in expr.children[1:]:
            if arg is None:
                continue
            key, value = arg.children
            if value is None or key.data != "name":
                raise ValueError(f"{name} takes keyword arguments only, e.g. {name}(lr=0.01)")
            k = str(key.children[0].children[0])
            if k in kwargs:
                raise ValueError(f"duplicate keyword argument '{k}'")
            kwargs[k] = self.elab.eval(value, self.scope)
        return name, kwargs

    def override(self, spec: TrainSpec, key: str, value: Any) -> None:
        """Applies one recipe entry given as a Python value (from the block's literals or configure())."""
        if key == "optimizer":
            spec.optimizer = value if isinstance(value, OptimizerConfig) else _named_config(value, make_optimizer)
        elif key == "schedule":
            spec.schedule = _named_config(value, make_schedule)
        elif key == "init":
            spec.init = None if value is None else make_init(value)
        elif key == "adversarial":
            spec.adversarial = None if value is None else as_attack(value)
        elif key == "early_stopping":
            spec.early_stopping = None if value is None else make_early_stopping(value if isinstance(value, dict) else {})
        elif key in ("loss", "metrics"):
            self.expression_override(spec, key, value)
        elif key == "augment":
            if value is None or isinstance(value, Augment):
                spec.augment = value
            elif isinstance(value, dict):
                known = ("crop", "flip", "rotate", "scale")
                for k in value:
                    if k not in known:
                        raise ValueError(f"augment takes no argument '{k}' (it takes: {', '.join(known)})")
                spec.augment = Augment(**value)
            else:
                raise ValueError(f"augment must be a dict or dlc.augment.Augment, got {value!r}")
        elif key in ("clip_norm", "clip_value", "l1", "l2"):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{key} must be a non-negative number, got {value!r}")
            setattr(spec, key, float(value))
        elif key in ("regularize", "freeze", "input_grads"):
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{key} must be a list of names")
            if key == "input_grads":
                known = [n for n, _ in self.elab.b.inputs]
                for v in value:
                    if v not in known:
                        raise ValueError(f"input_grads: '{v}' is not a model input ({', '.join(known)})")
            setattr(spec, key, list(value))
        elif key == "lr_mult":
            pairs = [tuple(p) for p in value]
            if not all(len(p) == 2 and isinstance(p[0], str) and isinstance(p[1], (int, float)) for p in pairs):
                raise ValueError("lr_mult is a list of [name_prefix, multiplier] pairs")
            spec.lr_mult = [(str(p[0]), float(p[1])) for p in pairs]
        elif key == "on_nonfinite":
            if value not in ("error", "skip"):
                raise ValueError(f'on_nonfinite must be "error" or "skip", got {value!r}')
            spec.on_nonfinite = value
        elif key in ("epochs", "batch_size"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive integer, got {value!r}")
            setattr(spec, key, value)
        else:
            hint = difflib.get_close_matches(key, CONFIG_KEYS, n=1)
            raise ValueError(f"unknown training setting '{key}'" + (f"; did you mean '{hint[0]}'?" if hint else ""))

    def expression_override(self, spec: TrainSpec, key: str, value: Any) -> None:
        """loss/metrics given from Python as .dlm expression text, e.g. configure(loss="mse(out, target)")."""
        texts = [value] if key == "loss" else list(value)
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
            if key == "loss":
                self.apply(spec, "loss", trees[0], self.scope.module)
            else:
                self.apply(spec, "metrics", Tree("list", trees), self.scope.module)
        finally:
            self.scope = outer


def _named_config(value: Any, make: Any) -> Any:
    if isinstance(value, str):
        return make(value, {})
    if isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[0], str):
        return make(value[0], dict(value[1]))
    if isinstance(value, dict) and "name" in value:
        rest = {k: v for k, v in value.items() if k != "name"}
        return make(value["name"], rest)
    raise ValueError(f"expected a name or (name, {{arguments}}), got {value!r}")
