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
from typing import Any, Callable, Mapping

from ..augment import Augment
from ..frontend.elaborate import Elaborated
from ..frontend.train_block import Call, Phase, Setting, TrainBlockReader
from ..ir import Graph
from ..ops.optim import INTERNAL, OPTIMIZER_TABLE, OPTIMIZERS
from .adversarial import ARGS as ATTACKS, Attack, as_attack
from .schedules import check_schedule

SCHEDULES: dict[str, dict[str, float]] = {
    "constant": {"warmup": 0},
    "step": {"every": 1000, "gamma": 0.1, "warmup": 0},
    "exponential": {"gamma": 0.999, "warmup": 0},
    "cosine": {"steps": 1000, "min_lr": 0.0, "warmup": 0},
    # Per epoch, on a metric (schedules.py); monitor "auto" is val_loss with validation data, else loss.
    "reduce_on_plateau": {"factor": 0.1, "patience": 10, "min_delta": 0.0, "cooldown": 0, "min_lr": 0.0,
                          "warmup": 0, "monitor": "auto", "mode": "auto"},
}
EARLY_STOPPING = {"patience": 5, "monitor": "val_loss", "min_delta": 0.0, "restore_best": True, "mode": "auto"}


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
    """An optimizer of the table in ops/optim.py with its arguments checked; `betas=[b1, b2]` is adam's pair."""
    kwargs = dict(kwargs)
    entry = OPTIMIZER_TABLE.get(name)
    if entry is None:
        names = list(OPTIMIZER_TABLE)
        hint = [n for n in names if n == name.lower()] or difflib.get_close_matches(name, names, n=1)
        raise ValueError(f"unknown optimizer '{name}'" + (f"; did you mean '{hint[0]}'?" if hint else "")
                         + f" (use {', '.join(names[:-1])} or {names[-1]})")
    base = entry.update
    defaults = {**dict(OPTIMIZERS[base][1]), **dict(entry.defaults)}
    lr = kwargs.pop("lr", entry.lr)
    if "betas" in kwargs:
        betas = kwargs.pop("betas")
        if not isinstance(betas, (list, tuple)) or len(betas) != 2:
            raise ValueError("betas must be a pair, e.g. betas=[0.9, 0.999]")
        kwargs["beta1"], kwargs["beta2"] = betas
    for key, value in kwargs.items():
        if key not in defaults or key in INTERNAL:
            known = ", ".join(["lr", *(k for k in defaults if k not in INTERNAL),
                               *(["betas"] if "beta1" in defaults else [])])
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
        if isinstance(out[key], str) != isinstance(value, str):  # monitor="val_loss", mode="min": text
            raise ValueError(f"schedule {name}: {key} must be {'text' if isinstance(out[key], str) else 'a number'}, "
                             f"got {value!r}")
        out[key] = value if isinstance(value, str) else float(value)
    check_schedule(name, out)
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


def _call_named(name: str, usage: str, value: Any) -> Any:
    """A setting the block writes as one particular call (`early_stopping(...)`): its keyword arguments;
    a value from configure() as given."""
    if isinstance(value, Call):
        if value.name != name:
            raise ValueError(f"use {usage}")
        return value.kwargs
    return value


def _set_optimizer(spec: TrainSpec, value: Any) -> None:
    spec.optimizer = value if isinstance(value, OptimizerConfig) else _named_config(value, make_optimizer)


def _set_schedule(spec: TrainSpec, value: Any) -> None:
    spec.schedule = _named_config(value, make_schedule)


def _set_init(spec: TrainSpec, value: Any) -> None:
    value = _call_named("load_params", 'load_params(path="pre.ckpt", include=[...], exclude=[...], rename=[...])',
                        value)
    spec.init = None if value is None else make_init(value)


def _set_adversarial(spec: TrainSpec, value: Any) -> None:
    spec.adversarial = None if value is None else as_attack(value)


def _set_early_stopping(spec: TrainSpec, value: Any) -> None:
    value = _call_named("early_stopping", "early_stopping(patience=..., monitor=..., restore_best=...)", value)
    spec.early_stopping = None if value is None else make_early_stopping(value if isinstance(value, dict) else {})


def _set_augment(spec: TrainSpec, value: Any) -> None:
    value = _call_named("augment", "augment(crop=..., flip=..., rotate=..., scale=...)", value)
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


def _non_negative(key: str) -> Callable[[TrainSpec, Any], None]:
    def apply(spec: TrainSpec, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{key} must be a non-negative number, got {value!r}")
        setattr(spec, key, float(value))
    return apply


def _positive_int(key: str) -> Callable[[TrainSpec, Any], None]:
    def apply(spec: TrainSpec, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{key} must be a positive integer, got {value!r}")
        setattr(spec, key, value)
    return apply


def _names(key: str) -> Callable[[TrainSpec, Any], None]:
    def apply(spec: TrainSpec, value: Any) -> None:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{key} must be a list of names")
        setattr(spec, key, list(value))
    return apply


def _set_lr_mult(spec: TrainSpec, value: Any) -> None:
    pairs = [tuple(p) for p in value]
    if not all(len(p) == 2 and isinstance(p[0], str) and isinstance(p[1], (int, float)) for p in pairs):
        raise ValueError("lr_mult is a list of [name_prefix, multiplier] pairs")
    spec.lr_mult = [(str(p[0]), float(p[1])) for p in pairs]


def _set_on_nonfinite(spec: TrainSpec, value: Any) -> None:
    if value not in ("error", "skip"):
        raise ValueError(f'on_nonfinite must be "error" or "skip", got {value!r}')
    spec.on_nonfinite = value


def _set_loss(spec: TrainSpec, value: int) -> None:
    spec.loss = value


def _set_metrics(spec: TrainSpec, value: list[tuple[str, int]]) -> None:
    spec.metrics = value


def _set_phases(spec: TrainSpec, value: list[Phase]) -> None:
    spec.phases = [_phase(ph) for ph in value]
    names = [ph.name for ph in spec.phases]
    if len(set(names)) != len(names):
        raise ValueError(f"phase names must differ, got {names}")


def _phase(ph: Phase) -> PhaseSpec:
    name, found = ph
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
    optimizer = make_optimizer(*found["optimizer"]) if "optimizer" in found else make_optimizer("adam", {})
    schedule = make_schedule(*found["schedule"]) if "schedule" in found else ("constant", {"warmup": 0})
    return PhaseSpec(name, found["loss"], tuple(params), optimizer, schedule, steps, float(clip))


# Every key a train block (or configure()) may set: how it is written and the function that checks and sets it.
SETTINGS: dict[str, Setting] = {
    "optimizer": Setting("call", _set_optimizer, calls=tuple(OPTIMIZER_TABLE)),
    "schedule": Setting("call", _set_schedule, calls=tuple(SCHEDULES)),
    "clip_norm": Setting("value", _non_negative("clip_norm")),
    "clip_value": Setting("value", _non_negative("clip_value")),
    "l1": Setting("value", _non_negative("l1")),
    "l2": Setting("value", _non_negative("l2")),
    "regularize": Setting("value", _names("regularize")),
    "freeze": Setting("value", _names("freeze")),
    "lr_mult": Setting("value", _set_lr_mult),
    "input_grads": Setting("inputs", _names("input_grads")),
    "epochs": Setting("value", _positive_int("epochs")),
    "batch_size": Setting("value", _positive_int("batch_size")),
    "early_stopping": Setting("call", _set_early_stopping, calls=("early_stopping",)),
    "metrics": Setting("metrics", _set_metrics),
    "loss": Setting("tensor", _set_loss),
    "augment": Setting("call", _set_augment, calls=("augment",)),
    "on_nonfinite": Setting("value", _set_on_nonfinite),
    "adversarial": Setting("call", _set_adversarial, calls=tuple(ATTACKS)),
    "init": Setting("call", _set_init, calls=("load_params",)),
    "phases": Setting("phases", _set_phases, fields={"loss": "scalar", "params": "value", "optimizer": "call",
                                                     "schedule": "call", "steps": "value", "clip_norm": "value"}),
}
# Names that are no setting, and where what they mean is written instead.
MISPLACED = {key: "the learning rate is an optimizer argument, e.g. optimizer = adam(lr=0.001)"
             for key in ("lr", "learning_rate")}


def read_recipe(el: Elaborated, overrides: Mapping[str, Any]) -> tuple[Graph, TrainSpec]:
    """The train block of an elaborated model with `overrides` (configure()'s settings) applied: the model's
    graph with the nodes the block adds (losses, metrics, their terms), and the recipe naming them."""
    reader = TrainBlockReader(el, SETTINGS, MISPLACED)
    spec = reader.read(TrainSpec(), overrides)
    return reader.graph_builder().build(), spec


def _named_config(value: Any, make: Any) -> Any:
    if isinstance(value, str):
        return make(value, {})
    if isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[0], str):
        return make(value[0], dict(value[1]))
    if isinstance(value, dict) and "name" in value:
        rest = {k: v for k, v in value.items() if k != "name"}
        return make(value["name"], rest)
    raise ValueError(f"expected a name or (name, {{arguments}}), got {value!r}")
