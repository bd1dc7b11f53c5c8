"""Adversarial examples made inside the compiled step: FGSM and PGD.

    adversarial = fgsm(eps=0.1, clip=[0, 1], clean_fraction=0.5)
    adversarial = pgd(eps=0.1, steps=7, step_size=0.025, clip=[0, 1])

`add_attack` rewrites a forward graph (model, loss, metrics) so that the model reads adversarial inputs:
first, for each attack step, a copy of the forward pass in evaluation form (dropout off, batch norm on its
running statistics: the attack targets the model as deployed, and running statistics are updated only once,
by the real forward pass) and its gradient with respect to the input; then the original nodes, reading the
attacked input. The attack's sign() has no gradient, so the parameters' gradients see the adversarial example
as a constant, as in Goodfellow et al. and Madry et al. Everything is one graph, so it is one compiled plan.

    FGSM: x' = clip(x + eps * sign(d loss / d x))
    PGD:  x_0 = clip(x + u), u ~ U(-eps, eps) elementwise (Madry et al.'s random start; x_0 = x with
          random_start=false); x_{t+1} = clip(project_eps(x_t + step_size * sign(d loss / d x_t)))

The random start draws from the counter-based stream of the random tensors (seed, step, salt, element), with
a salt no other draw of the graph uses: a training step's start is fresh every step, the same for any thread
count, and a data-parallel rank draws its rows of the global batch's start.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping

import numpy as np

from ..autodiff import backward
from ..ir import Graph, GraphBuilder, Node
from ..passes import PassContext
from ..passes.eval_mode import strip_training_only

ARGS = {"fgsm": ("eps", "clip", "clean_fraction", "input"),
        "pgd": ("eps", "steps", "step_size", "clip", "clean_fraction", "input", "random_start")}


@dataclass(frozen=True)
class Attack:
    method: str  # "fgsm" or "pgd"
    eps: float
    steps: int = 1
    step_size: float = 0.0  # 0: eps for FGSM, 2.5 * eps / steps for PGD (Madry et al.)
    clip: tuple[float, float] | None = None  # the valid input range, e.g. (0, 1) for scaled images
    clean_fraction: float = 0.0  # the first round(fraction * N) rows of each batch stay clean
    input: str | None = None  # the attacked input; None: the model's first floating-point input
    random_start: bool = False  # PGD: start from a uniform draw in the eps-ball (make_attack's default: true)

    @property
    def alpha(self) -> float:
        if self.step_size > 0:
            return self.step_size
        return self.eps if self.method == "fgsm" else 2.5 * self.eps / self.steps


def make_attack(name: str, kwargs: Mapping[str, Any]) -> Attack:
    """An Attack from the recipe's `fgsm(...)`/`pgd(...)` or configure(adversarial=("pgd", {...}))."""
    if name not in ARGS:
        raise ValueError(f"unknown attack '{name}' (use fgsm or pgd)")
    for key in kwargs:
        if key not in ARGS[name]:
            raise ValueError(f"{name} takes no argument '{key}' (it takes: {', '.join(ARGS[name])})")
    if "eps" not in kwargs:
        raise ValueError(f"{name} needs eps, the size of the perturbation")

    def number(key: str, default: float) -> float:
        value = kwargs.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{name}: {key} must be a non-negative number, got {value!r}")
        return float(value)

    steps = kwargs.get("steps", 1 if name == "fgsm" else 7)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 100:
        raise ValueError(f"{name}: steps must be an integer from 1 to 100, got {steps!r}")
    clip = kwargs.get("clip")
    if clip is not None:
        if (not isinstance(clip, (list, tuple)) or len(clip) != 2
                or not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in clip) or clip[0] >= clip[1]):
            raise ValueError(f"{name}: clip is the valid input range [low, high], got {clip!r}")
        clip = (float(clip[0]), float(clip[1]))
    fraction = number("clean_fraction", 0.0)
    if fraction > 1:
        raise ValueError(f"{name}: clean_fraction must be in [0, 1], got {fraction}")
    target = kwargs.get("input")
    if target is not None and not isinstance(target, str):
        raise ValueError(f"{name}: input names a model input, as a string")
    random_start = kwargs.get("random_start", name == "pgd")
    if not isinstance(random_start, bool):
        raise ValueError(f"{name}: random_start is true or false, got {random_start!r}")
    return Attack(name, number("eps", 0.0), steps, number("step_size", 0.0), clip, fraction, target, random_start)


def as_attack(value: Any) -> Attack:
    """An Attack from an Attack, ("pgd", {"eps": 0.1, ...}) or {"name": "pgd", "eps": 0.1, ...}."""
    if isinstance(value, Attack):
        return value
    if isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[0], str):
        return make_attack(value[0], dict(value[1]))
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        return make_attack(value["name"], {k: v for k, v in value.items() if k != "name"})
    raise ValueError(f"an attack is ('fgsm' or 'pgd', {{'eps': ..., ...}}), got {value!r}")


def attacked_input(graph: Graph, attack: Attack) -> int:
    float_inputs = [(n, v) for n, v in graph.inputs if graph.values[v].dtype in ("f32", "f64")]
    if attack.input is None:
        if not float_inputs:
            raise ValueError("adversarial training needs a floating-point model input")
        return float_inputs[0][1]
    for n, v in float_inputs:
        if n == attack.input:
            return v
    raise ValueError(f"adversarial: '{attack.input}' is not a floating-point model input "
                     f"({', '.join(n for n, _ in float_inputs)})")


def _copy_nodes(b: GraphBuilder, nodes: tuple[Node, ...], mapping: dict[int, int]) -> None:
    """Appends copies of `nodes` with fresh outputs, reading `mapping`'s replacements; extends the mapping."""
    for node in nodes:
        outs = tuple(b.new_value(b.values[o]) for o in node.outputs)
        b.nodes.append(replace(node, inputs=tuple(mapping.get(i, i) for i in node.inputs), outputs=outs))
        mapping.update(zip(node.outputs, outs))


def add_attack(graph: Graph, loss: int, attack: Attack) -> tuple[Graph, int]:
    """`graph` with the attack's nodes first and its own nodes reading the attacked input (see the module
    docstring), and the attacked input's value. Outputs keep their names and values; `loss` is the value the
    attack ascends."""
    x = attacked_input(graph, attack)
    evaluation = strip_training_only(replace(graph, outputs=(("__attack_loss__", loss),)), PassContext())
    eval_loss = evaluation.outputs[0][1]
    b = GraphBuilder(replace(graph, nodes=()))
    dtype = b.type_of(x).dtype
    x_t = x
    if attack.random_start:
        salts = [dict(n.attrs)["salt"] for n in graph.nodes if "salt" in dict(n.attrs)]
        noise = b.op1("random_uniform", shape=b.type_of(x).shape, salt=max(salts, default=0) + 1, dtype=dtype,
                      low=-attack.eps, high=attack.eps)
        x_t = _clip(b, b.op1("add", x, noise), attack, dtype)
    for _ in range(attack.steps):
        mapping = {x: x_t}
        _copy_nodes(b, evaluation.nodes, mapping)
        diff = backward(b.build(), mapping.get(eval_loss, eval_loss), [x_t])
        b = GraphBuilder(diff.graph)
        g = diff.grads.get(x_t)
        if g is None:  # the loss does not depend on the input: nothing to attack
            break
        x_next = b.op1("add", x_t, b.op1("mul_scalar", b.op1("sign", g), value=attack.alpha))
        if attack.method == "pgd":
            x_next = b.op1("minimum", b.op1("maximum", x_next, b.op1("add_scalar", x, value=-attack.eps)),
                           b.op1("add_scalar", x, value=attack.eps))
        x_t = _clip(b, x_next, attack, dtype)
    if attack.clean_fraction > 0 and x_t != x:
        shape = tuple(int(d) for d in b.type_of(x).shape)
        keep = np.zeros((shape[0],) + (1,) * (len(shape) - 1), dtype=bool)
        keep[:int(round(attack.clean_fraction * shape[0]))] = True
        x_t = b.op1("where", b.const(keep), x, x_t)
    b.phase = "forward"
    b.nodes.extend(replace(n, inputs=tuple(x_t if i == x else i for i in n.inputs)) for n in graph.nodes)
    b.outputs = list(graph.outputs)
    return b.build(), x_t


def _clip(b: GraphBuilder, v: int, attack: Attack, dtype: str) -> int:
    """v clipped to the attack's valid input range (unchanged without one)."""
    if attack.clip is None:
        return v
    return b.op1("minimum", b.op1("maximum", v, b.scalar(attack.clip[0], dtype)), b.scalar(attack.clip[1], dtype))
