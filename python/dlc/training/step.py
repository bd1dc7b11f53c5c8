"""Builds the training graphs of a program, each compiled to one plan:

- "loss": forward (evaluation mode), loss and metrics, for `evaluate`;
- "grads": forward, loss, backward; outputs the loss and the gradients, for `loss_and_grads`;
- "step": forward, loss, backward and the optimizer update of every parameter, for `train_step`; guarded by
  default: the update reads the loss too and skips itself if the loss or a gradient is not finite, and the
  plan outputs which (NONFINITE: an i32 [loss, one per trainable parameter], 1 = not finite);
- "apply": the optimizer update alone, reading the gradients as inputs named `grad:<parameter>`: with "grads"
  it splits a step in two so that something can happen to the gradients in between (an allreduce);
- "attack": the adversarial examples of an attack (see adversarial.py), for `adversarial_examples`.

Regularization terms join the loss before differentiation; frozen parameters get no gradient and no update.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from typing import Mapping

from lark import Tree

from ..autodiff import backward
from ..errors import CompileError, DlcError
from ..frontend.elaborate import Elaborated
from ..ir import Graph, GraphBuilder, ParamSpec, TensorType
from ..ops.optim import OPTIMIZERS
from ..passes import PassContext
from ..passes.eval_mode import freeze_normalization, strip_training_only
from ..passes.rewrite import prune_values
from .adversarial import Attack, add_attack
from .recipe import TrainSpec, for_phase

HYPER = "__hyper__"
NONFINITE = "__nonfinite__"


@dataclass(frozen=True)
class TrainingGraph:
    graph: Graph
    spec: TrainSpec
    grad_names: list[str]  # outputs "grads" carries, in order (parameter names, then input names)
    trainable: list[str]  # parameters the optimizer updates


def matches(name: str, patterns: list[str]) -> bool:
    """Whether a hierarchical name falls under any pattern: a name prefix ("backbone" covers backbone.c1.weight
    and its optimizer state backbone.c1.weight/adam.m) or a glob ("c[12].*", "*.bias")."""
    owner = name.split("/")[0]
    return any(fnmatchcase(owner, p) if any(c in p for c in "*?[") else
               (name == p or name.startswith(p + ".") or name.startswith(p + "/")) for p in patterns)


def selected(name: str, patterns: tuple[str, ...]) -> bool:
    """A phase's parameter selection: layer or block names (prefixes) or globs, as `matches`."""
    return matches(name, list(patterns))


def checked_recipe(graph: Graph, spec: TrainSpec, phase: str | None = None) -> TrainSpec:
    """The recipe a graph is built for (with `phase`, that phase's alone), its loss checked."""
    if phase is not None:
        spec = for_phase(spec, phase)
    elif spec.phases:
        return spec  # the phases' own losses are checked when each phase is built
    if spec.loss is None:
        raise NoLoss(f"the model declares no loss: {_ADD_LOSS}")
    if graph.values[spec.loss].shape != ():
        raise DlcError(f"the loss must be a scalar, got {graph.values[spec.loss]}; reduce it with mean()")
    return spec


_ADD_LOSS = 'add `loss = ...` to the train block or call configure(loss="cross_entropy(logits, y)")'


class NoLoss(DlcError):
    """A recipe without a loss; the trainer locates it in the train block (no_loss_error)."""


def no_loss_error(el: Elaborated) -> DlcError:
    """Where a missing loss is in the model: at an assignment of the train block whose name looks like the
    loss (`losstext = ...` defines a tensor, not the setting), else at the block; no block, no location."""
    if el.train is None or el.train_scope is None:
        return NoLoss(f"the model declares no loss: {_ADD_LOSS}")
    module = el.train_scope.module
    for stmt in el.train.children:
        if isinstance(stmt, Tree) and stmt.data == "assign" and len(stmt.children) == 2:
            key = str(stmt.children[0])
            if "loss" in key.lower() or difflib.get_close_matches(key, ["loss"], cutoff=0.6):
                return CompileError(f"the train block declares no loss; '{key}' defines a tensor: did you mean "
                                    f"'loss = ...'?", module.loc(stmt.children[0]))
    return CompileError(f"the train block declares no loss: {_ADD_LOSS}", module.loc(el.train))


def trainable_params(graph: Graph, spec: TrainSpec) -> list[ParamSpec]:
    return [p for p in graph.params if p.kind == "param" and not matches(p.name, spec.freeze)
            and (spec.select is None or selected(p.name, spec.select))]


def _add_regularization(b: GraphBuilder, loss: int, params: list[ParamSpec], spec: TrainSpec) -> int:
    chosen = [p for p in params if (matches(p.name, spec.regularize) if spec.regularize is not None
                                    else p.name.endswith("weight"))]
    for coeff, op in ((spec.l2, "square"), (spec.l1, "abs")):
        if coeff <= 0 or not chosen:
            continue
        total = None
        for p in chosen:
            term = b.op1("sum", b.op1(op, p.value))
            if b.type_of(term).dtype != b.type_of(loss).dtype:
                term = b.op1("cast", term, dtype=b.type_of(loss).dtype)
            total = term if total is None else b.op1("add", total, term)
        loss = b.op1("add", loss, b.op1("mul_scalar", total, value=coeff))
    return loss


def build(recipe: tuple[Graph, TrainSpec], kind: str, mode: str = "train", attack: Attack | None = None,
          recipe_attack: bool | None = None, phase: str | None = None, guard: bool = True) -> TrainingGraph:
    """Builds from the model's graph with its train block read into it, and that recipe (read_recipe).
    mode="eval" differentiates the evaluation form (dropout off, batch norm on running statistics).
    `attack` makes the model read adversarial inputs built in the same graph; `recipe_attack` (default: for
    "step") uses the recipe's `adversarial` instead. kind "attack" outputs the adversarial inputs alone.
    `phase` builds that phase of a multi-phase recipe. guard=False builds "step" without its non-finite
    guard (what the guard costs is measured against it: dlc bench --train)."""
    graph0, spec = recipe
    spec = checked_recipe(graph0, spec, phase)
    if spec.phases:
        raise DlcError(f"this recipe has phases ({', '.join(p.name for p in spec.phases)}): build one of them")
    params = trainable_params(graph0, spec)
    if spec.select is not None and not params:  # torch.optim refuses an empty parameter list likewise
        raise DlcError(f"phase '{spec.phase}': params {list(spec.select)} select no trainable parameter "
                       f"(the model's: {', '.join(p.name for p in graph0.params if p.kind == 'param')})")
    if kind == "apply":  # the update alone: parameters persistent, gradients given as inputs
        ab = GraphBuilder()
        ab.phase = "update"
        own = [ParamSpec(p.name, ab.add_param(p.name, p.type, p.init, kind=p.kind, trainable=p.trainable,
                                              fans=p.fans), p.type, p.init, p.kind, p.trainable, p.fans)
               for p in params]
        given = {p.name: ab.add_input(f"grad:{p.name}", p.type) for p in params}
        if own:
            _add_update(ab, own, given, spec)
        return TrainingGraph(ab.build(), spec, [], [p.name for p in params])
    frozen = {p.value for p in graph0.params if p.kind == "param" and matches(p.name, spec.freeze)}
    if frozen:
        graph0 = freeze_normalization(graph0, frozen)
    # Loss and metrics travel as outputs through the rewrites below, which may renumber them.
    graph0 = replace(graph0, outputs=(("loss", spec.loss),) + tuple(spec.metrics))
    if mode == "eval":
        graph0 = strip_training_only(graph0, PassContext(training=False))
    if attack is None and (kind == "step" if recipe_attack is None else recipe_attack):
        attack = spec.adversarial
    attacked = None
    if attack is not None:
        graph0, attacked = add_attack(graph0, graph0.outputs[0][1], attack)
    b = GraphBuilder(graph0)
    b.loc, b.scope = None, ""
    if kind == "attack":  # the adversarial examples themselves
        if attacked is None:
            raise DlcError("an 'attack' graph needs an attack")
        b.outputs = [("adversarial", attacked)]
        return TrainingGraph(b.build(), spec, [], [p.name for p in params])
    loss = graph0.outputs[0][1]
    metrics = list(graph0.outputs[1:])
    loss = _add_regularization(b, loss, params, spec) if kind != "loss" else loss
    outputs = [("loss", loss)] + metrics
    if kind == "loss":
        b.outputs = outputs
        return TrainingGraph(b.build(), spec, [], [p.name for p in params])

    inputs = {n: v for n, v in b.inputs}
    wrt = [p.value for p in params] + [inputs[n] for n in spec.input_grads]
    diff = backward(b.build(), loss, wrt)
    b = GraphBuilder(diff.graph)
    names = [p.name for p in params] + list(spec.input_grads)
    grads = {}
    for name, v in zip(names, wrt):
        g = diff.grads.get(v)
        if g is None:  # no path to the loss: the gradient is zero
            t = b.type_of(v)
            g = b.op1("mul_scalar", v, value=0.0) if t.dtype in ("f32", "f64") else None
        grads[name] = g
    if kind == "grads":
        b.outputs = outputs + [(f"grad:{n}", g) for n, g in grads.items() if g is not None]
        return TrainingGraph(b.build(), spec, [n for n in names if grads[n] is not None], [p.name for p in params])

    b.phase = "update"
    status = _add_update(b, params, grads, spec, loss if guard else None) if params else None
    b.outputs = outputs + ([(NONFINITE, status)] if status is not None else [])
    return TrainingGraph(b.build(), spec, [], [p.name for p in params])


def _add_update(b: GraphBuilder, params: list[ParamSpec], grads: Mapping[str, int], spec: TrainSpec,
                guard_loss: int | None = None) -> int | None:
    """One optimizer-update node over every trainable parameter (so clip_norm sees the global norm). Its
    first operand is the f64[4] hyper input: learning rate, step t (from 1), gradient scale, unused. With
    guard_loss, the node also reads the loss and returns its status value (see ops/optim.py)."""
    opt = spec.optimizer
    hyper = b.add_input(HYPER, TensorType("f64", (4,)))
    operands = [hyper] + ([guard_loss] if guard_loss is not None else [])
    mults = []
    for p in params:
        operands += [p.value, grads[p.name]]
        for state in OPTIMIZERS[opt.name][0]:
            # Each phase keeps its own state, even for a parameter two phases train.
            prefix = f"{spec.phase}." if spec.phase else ""
            operands.append(b.add_param(f"{p.name}/{prefix}{opt.name}.{state}", p.type, ("zeros",), kind="opt",
                                        trainable=False))
        mult = 1.0
        for prefix, m in spec.lr_mult:
            if matches(p.name, [prefix]):
                mult = m
        mults.append(mult)
    out = b.op(f"{opt.name}_update", operands, **dict(opt.hyper), clip_norm=spec.clip_norm,
               clip_value=spec.clip_value, lr_mults=tuple(mults), guard=guard_loss is not None)
    return out[0] if guard_loss is not None else None


def strip_unused_inputs(graph: Graph) -> Graph:
    """Drops inputs the plan does not read, with their types: an input only inference needs (a VAE's latent
    vectors to decode) may have a dimension no training batch binds."""
    used = {v for n in graph.nodes for v in n.inputs} | {v for _, v in graph.outputs}
    return prune_values(replace(graph, inputs=tuple((n, v) for n, v in graph.inputs if v in used)))
