"""`Trainer`: training a `CompiledModel` with a recipe (the model's train block, plus overrides).

A Trainer holds a model core and owns everything about training it: the recipe, the optimizer state, the step
and epoch counters and the compiled training plans. The parameters stay the model's, so several Trainers can
share one model (two phases of a GAN, online and target updates, a fine-tuning recipe next to the original
one): each compiles its own plans, all of which address the same parameter memory.

Each entry point runs compiled plans (see step.py); Python only batches data, computes the learning rate for
the step and keeps the counters that make a resumed run bit-identical: the optimizer step (which also seeds
dropout masks) and the epoch (which seeds shuffling).

`train_step` (and so `fit`) runs one fused plan: forward, backward and the optimizer update, whose kernel
first checks the loss and every gradient and writes nothing if one is not finite (the plan says which:
step.NONFINITE). A step can also be split in two plans with a check (and an optional hook) between them:

    compute_gradients(**batch)     # forward + backward; gradients land in one contiguous region
    gradient_hook(trainer.gradients)   # e.g. an in-place allreduce (average) over that flat array
    (a non-finite loss or gradient stops here: see on_nonfinite)
    apply_gradients()              # the optimizer update, reading the region

`train_step` does exactly that when a gradient_hook is set, so data-parallel training needs only the hook;
both forms give bit-identical parameters. With phases, each step is the current phase's (its loss, its
parameters' gradients, its optimizer, schedule and step count). A NaN or inf in the loss or any gradient never
reaches the parameters: by default (`on_nonfinite = "error"`) the step raises NonFiniteError naming the step
and the parameters whose gradients are not finite, with parameters, optimizer state and step count unchanged;
`on_nonfinite = "skip"` skips the update and reports `skipped: 1.0` for that step. A skipped step is not
counted (as PyTorch's GradScaler skips optimizer.step): Adam's bias correction, the schedule and the dropout
seed of the next step are those the skipped one had. Steps on one model are serialized (the model's lock),
so threads calling `train_step` concurrently never lose an update.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ..errors import DlcError, NonFiniteError
from ..ir import Graph
from ..lowering import LoweredPlan
from ..plan_cache import PlanCache
from ..model import CompiledModel, TensorSpec, readonly_views
from ..passes import PassContext, run_pipeline
from ..passes.dead_code import eliminate_dead_code
from ..shard import Shard
from . import step as step_graphs
from .checkpoint import checkpoint_classes, load_checkpoint, save_checkpoint
from .datacheck import Origin, check_arrays, check_labels, encode_labels, is_text, label_ranges
from .epochs import LocalStepper, fit_epochs
from .loop import as_named, batches
from .adversarial import as_attack
from .recipe import TrainSpec, phase_at, read_recipe
from .transfer import load_params
from .schedules import PLATEAU, learning_rate, plateau_step

GradientHook = Callable[[np.ndarray], None]


class Trainer:
    def __init__(self, model: CompiledModel, **settings: Any):
        self.model = model
        self._opt: dict[str, np.ndarray] = {}
        self._overrides: dict[str, Any] = {}
        # The train block read with the overrides, per binding (read once per configuration): the graph with
        # the block's nodes and the recipe. Cleared by configure().
        self._recipes: PlanCache[tuple[Graph, TrainSpec]] = PlanCache()
        self._step = 0
        self._epoch = 0
        # The rest of a run's state, as JSON-able values saved in checkpoints: "plateau" (reduce_on_plateau),
        # "progress" (through an unfinished epoch, see epochs.py), "best" (save-best callbacks).
        self.run_state: dict[str, Any] = {}
        self.run_tensors: dict[str, np.ndarray] = {}  # and its arrays ("best/<param>": early stopping's best)
        self._plans: PlanCache[tuple[LoweredPlan, step_graphs.TrainingGraph]] = PlanCache()
        self._gradients: np.ndarray | None = None
        self._grad_views: dict[str, np.ndarray] = {}
        # One region per set of trainable parameters, so phases taking turns do not reallocate every step.
        self._regions: dict[tuple[str, ...], tuple[np.ndarray, dict[str, np.ndarray]]] = {}
        self._label_ranges: dict[str, tuple[int, str]] | None = None
        self.gradient_hook: GradientHook | None = None
        if settings:
            self.configure(**settings)

    # ---- configuration ----

    def configure(self, **settings: Any) -> "Trainer":
        """Overrides entries of the model's train block: optimizer=("sgd", {"lr": 0.1}), schedule=...,
        loss="mse(out, target)", metrics=[...], clip_norm=..., l2=..., freeze=[...], epochs=..., etc."""
        merged = {**self._overrides, **settings}
        recipe = read_recipe(self.model.elaborated(), merged)  # validates before anything changes
        self._overrides = merged
        self._recipes.clear()
        self._recipes[tuple(sorted(self.model.dims.items()))] = recipe
        self._label_ranges = None
        self._plans.clear()
        self._gradients, self._grad_views, self._regions = None, {}, {}
        return self

    def freeze(self, *prefixes: str) -> "Trainer":
        """Stops training the parameters under these name prefixes (batch-norm statistics included)."""
        current = list(self.spec().freeze)
        return self.configure(freeze=current + [p for p in prefixes if p not in current])

    def unfreeze(self, *prefixes: str) -> "Trainer":
        return self.configure(freeze=[p for p in self.spec().freeze if p not in prefixes])

    def spec(self) -> TrainSpec:
        """The recipe with the overrides applied (read once per configuration: train_step consults it for the
        phase whose turn it is)."""
        return self.recipe(self.model.dims)[1]

    def recipe(self, binding: Mapping[str, int]) -> tuple[Graph, TrainSpec]:
        """The model's graph for a binding with the train block's nodes, and the recipe (read once per
        configuration and binding)."""
        key = tuple(sorted(binding.items()))
        with self.model.lock:
            if key not in self._recipes:
                self._recipes[key] = read_recipe(self.model.elaborated(binding), self._overrides)
            return self._recipes[key]

    # ---- state ----

    @property
    def step_count(self) -> int:
        """Optimizer steps taken so far."""
        return self._step

    @property
    def epoch(self) -> int:
        return self._epoch

    def end_epoch(self) -> None:
        """Counts one finished epoch (fit does; so does a loop of its own, such as dlc.distributed's)."""
        self._epoch += 1

    def after_epoch(self, logs: Mapping[str, float]) -> str:
        """Schedules that follow the run rather than the step (reduce_on_plateau) see the finished epoch's
        loss and metrics; returns a note when the learning rate changed ("")."""
        name, settings = self.spec().schedule
        if name != PLATEAU:
            return ""
        return plateau_step(settings, self.run_state.setdefault("plateau", {}), logs)

    @property
    def learning_rate(self) -> float:
        """The learning rate of the next step (of the current phase, with phases)."""
        spec = self.spec()
        if spec.phases:
            phase, count = phase_at(spec, self._step)
            return learning_rate(phase.optimizer.lr, phase.schedule, count, self.lr_scale)
        return learning_rate(spec.optimizer.lr, spec.schedule, self._step, self.lr_scale)

    @property
    def lr_scale(self) -> float:
        """reduce_on_plateau's current factor on the base learning rate (1 until it first reduces)."""
        return float(self.run_state.get("plateau", {}).get("scale", 1.0))

    @property
    def optimizer_state(self) -> dict[str, np.ndarray]:
        return readonly_views(self._opt)

    @property
    def inputs(self) -> dict[str, TensorSpec]:
        return self.model.inputs

    @property
    def params(self) -> dict[str, np.ndarray]:
        return self.model.params

    def set_params(self, mapping: Mapping[str, Any], strict: bool = True) -> None:
        self.model.set_params(mapping, strict)

    @property
    def seed(self) -> int:
        return self.model.seed

    # ---- plans ----

    def training_graph(self, kind: str, binding: Mapping[str, int], **options: Any) -> step_graphs.TrainingGraph:
        """The training graph of one kind for a binding, before any pass (not compiled, not cached). Options:
        mode="eval", attack=Attack, recipe_attack=bool, phase=name (see step.build; with phases, by default
        the phase whose turn it is)."""
        if "phase" not in options and self.spec().phases:
            options["phase"] = self.current_phase
        try:
            return step_graphs.build(self.recipe(binding), kind, **options)
        except step_graphs.NoLoss:  # say where in the model: the train block, or its misnamed loss
            raise step_graphs.no_loss_error(self.model.elaborated(binding)) from None

    def training_plan(self, kind: str, binding: Mapping[str, int],
                      **options: Any) -> tuple[LoweredPlan, step_graphs.TrainingGraph]:
        """The compiled plan of one kind ("loss", "grads", "step", "apply", "attack"; see step.py) for a
        binding and the options of training_graph; with phases, of options["phase"] or the phase whose turn
        it is."""
        if "phase" not in options and self.spec().phases:
            options["phase"] = self.current_phase
        key = (kind, tuple(sorted(binding.items())), tuple(sorted(options.items())))
        with self.model.lock:
            if key not in self._plans:
                tg = self.training_graph(kind, binding, **options)
                _check_given(tg.graph)
                training = kind not in ("loss", "attack") and options.get("mode", "train") == "train"
                graph = run_pipeline(tg.graph, PassContext(training=training, fuse=self.model.fuse))
                self._plans[key] = (self._lower(step_graphs.strip_unused_inputs(graph), pack=not training), tg)
            return self._plans[key]

    def _lower(self, graph: Any, pack: bool) -> LoweredPlan:
        """Plans that train write the weights at every step, so packing them once would buy nothing; the
        others (evaluation, attacks, eval-mode gradients) pack them (see CompiledModel.lower)."""
        params = self.model.params
        for p in graph.params:
            shape = tuple(int(d) for d in p.type.shape)
            if p.kind == "opt" and (p.name not in self._opt or self._opt[p.name].shape != shape):
                self._opt[p.name] = np.zeros(shape, dtype=params[p.name.split("/")[0]].dtype)
        return self.model.lower(graph, self._opt, pack=pack)

    def _prepare(self, batch: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, int]]:
        names = list(batch)
        arrays = self.model.check_inputs(batch, names)
        return arrays, self.model.bind_dims(arrays, names)

    def _hyper(self, spec: TrainSpec, grad_scale: float) -> tuple[float, np.ndarray]:
        """The learning rate and the update's hyper input for the next step of `spec` (one phase's recipe,
        with phases: its schedule and Adam step count follow that phase's own steps)."""
        full = self.spec()
        count = phase_at(full, self._step)[1] if full.phases else self._step
        lr = learning_rate(spec.optimizer.lr, spec.schedule, count, self.lr_scale)
        return lr, np.array([lr, float(count + 1), grad_scale, 0.0], dtype=np.float64)

    # ---- one batch ----

    def loss_and_grads(self, mode: str = "train", **batch: Any) -> tuple[float, dict[str, np.ndarray]]:
        """The loss and its gradients: every trainable parameter by name, plus the inputs listed in
        input_grads by input name. No optimizer update; in mode="train" batch norm's running statistics are
        updated, as by a training step's forward pass. mode="eval" differentiates the evaluation form, changing
        nothing: dropout off, batch norm on its running statistics (saliency maps of the deployed model)."""
        if mode not in ("train", "eval"):
            raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}")
        arrays, binding = self._prepare(batch)
        lowered, _ = self.training_plan("grads", binding, mode=mode)
        out = self.model.run_plan(lowered, arrays, step=self._step, training=mode == "train", label="gradients")
        grads = {k[len("grad:"):]: v for k, v in out.items() if k.startswith("grad:")}
        return float(out["loss"]), grads

    def train_step(self, **batch: Any) -> dict[str, float]:
        """One step: forward, loss, backward, the finiteness check and the optimizer update. Returns loss,
        metrics and lr (and skipped: 1.0 for a step skipped under on_nonfinite = "skip"). With phases, the
        step of the phase whose turn it is (phase_at), its results named `<phase>.<loss or metric>`."""
        with self.model.lock:  # every Trainer of this model updates the same parameters
            if self.gradient_hook is None:
                return self._fused_step(batch)
            result = self.compute_gradients(**batch)
            self.gradient_hook(self.gradients)
            bad = [] if np.isfinite(self.gradients).all() else [
                n for n, g in self._grad_views.items() if not np.isfinite(g).all()]
            problem = _nonfinite(result, bad)
            if problem:
                return self._refuse(result, problem)
            result["lr"] = self.apply_gradients()
            return result

    def _fused_step(self, batch: Mapping[str, Any]) -> dict[str, float]:
        """train_step as one plan: its update writes nothing when the loss or a gradient is not finite, and
        says which in the plan's NONFINITE output."""
        arrays, binding = self._prepare(batch)
        lowered, tg = self.training_plan("step", binding)
        lr, hyper = self._hyper(tg.spec, 1.0)
        out = self.model.run_plan(lowered, {**arrays, step_graphs.HYPER: hyper}, step=self._step + 1,
                                  training=True, label="training")
        status = out.pop(step_graphs.NONFINITE, None)  # none without trainable parameters: no update
        prefix = f"{tg.spec.phase}." if tg.spec.phase else ""
        result = {prefix + k: float(v) for k, v in out.items()}
        bad = [n for n, flag in zip(tg.trainable, status[1:]) if flag] if status is not None else []
        problem = _nonfinite(result, bad)
        if problem:
            return self._refuse(result, problem)
        self._step += 1
        result["lr"] = lr
        return result

    def _refuse(self, result: dict[str, float], problem: str) -> dict[str, float]:
        """A step whose update was not applied: the on_nonfinite policy (raise, or report it skipped)."""
        if self.spec().on_nonfinite == "error":
            raise NonFiniteError(f"training step {self._step + 1}{self._phase_label()}: {problem}; the update "
                                 "was not applied (parameters and optimizer state are unchanged). Set "
                                 "on_nonfinite = \"skip\" in the train block to skip such steps instead")
        return {**result, "skipped": 1.0}

    def _phase_label(self) -> str:
        phase = self.current_phase
        return f" (phase {phase})" if phase else ""

    @property
    def current_phase(self) -> str | None:
        """The phase the next train_step runs (None for a single-phase recipe)."""
        spec = self.spec()
        return phase_at(spec, self._step)[0].name if spec.phases else None

    @property
    def gradients(self) -> np.ndarray:
        """The gradient region: one contiguous 1-D array holding every trainable parameter's gradient, in
        the order of `gradient_views` (filled by compute_gradients, read by apply_gradients)."""
        if self._gradients is None:
            raise DlcError("no gradients yet: call compute_gradients first")
        return self._gradients

    @property
    def gradient_views(self) -> dict[str, np.ndarray]:
        """Each trainable parameter's gradient, as a view into `gradients`."""
        return dict(self._grad_views)

    def _gradient_region(self, trainable: list[str]) -> dict[str, np.ndarray]:
        key = tuple(trainable)
        if key not in self._regions:
            params = self.model.params
            dtypes = {params[n].dtype for n in trainable}
            if len(dtypes) > 1:
                raise DlcError(f"the trainable parameters mix dtypes ({', '.join(sorted(map(str, dtypes)))}); "
                               f"one gradient region needs one")
            sizes = [params[n].size for n in trainable]
            region = np.zeros(sum(sizes), dtype=dtypes.pop() if dtypes else np.float32)
            offsets = np.cumsum([0] + sizes)
            self._regions[key] = (region, {n: region[offsets[i]:offsets[i + 1]].reshape(params[n].shape)
                                           for i, n in enumerate(trainable)})
        self._gradients, self._grad_views = self._regions[key]
        return self._grad_views

    def compute_gradients(self, **batch: Any) -> dict[str, float]:
        """Forward and backward for the next step (dropout seeded as train_step would), writing every
        trainable parameter's gradient into the gradient region. Returns loss and metrics; updates nothing."""
        return self.compute_shard_gradients(batch)

    def compute_shard_gradients(self, batch: Mapping[str, Any], shard: Shard | None = None) -> dict[str, float]:
        """compute_gradients for a batch that is one shard of a data-parallel global batch (dlc.distributed):
        dropout draws the global batch's masks for these samples, and with shard.sum_across_ranks batch norm
        uses the global batch's statistics."""
        with self.model.lock:
            arrays, binding = self._prepare(batch)
            lowered, tg = self.training_plan("grads", binding, recipe_attack=True)
            views = self._gradient_region(tg.trainable)
            out = self.model.run_plan(lowered, arrays, step=self._step + 1, training=True, label="gradients",
                                      out={f"grad:{n}": v for n, v in views.items()}, shard=shard)
            prefix = f"{tg.spec.phase}." if tg.spec.phase else ""
            return {prefix + k: float(v) for k, v in out.items() if not k.startswith("grad:")}

    def apply_gradients(self, grad_scale: float = 1.0) -> float:
        """The optimizer update from the gradient region (each gradient times grad_scale first), counting
        one step. Returns the learning rate used."""
        with self.model.lock:
            lowered, tg = self.training_plan("apply", self.model.dims)
            views = self._gradient_region(tg.trainable)
            lr, hyper = self._hyper(tg.spec, grad_scale)
            self.model.run_plan(lowered, {step_graphs.HYPER: hyper, **{f"grad:{n}": v for n, v in views.items()}},
                                step=self._step + 1, training=True, label="update")
            self._step += 1
            return lr

    def evaluate_batch(self, attack: Any = None, **batch: Any) -> dict[str, float]:
        """Loss and metrics of one batch in evaluation mode; with `attack` (("fgsm", {"eps": 0.1}), see
        adversarial.py), on the adversarial examples made from it (robust metrics). With phases, every
        phase's (`<phase>.loss`, ...)."""
        arrays, binding = self._prepare(batch)
        result: dict[str, float] = {}
        for phase in [p.name for p in self.spec().phases] or [None]:
            options: dict[str, Any] = {"attack": None if attack is None else as_attack(attack)}
            if phase is not None:
                options["phase"] = phase
            lowered, _ = self.training_plan("loss", binding, **options)
            out = self.model.run_plan(lowered, arrays, step=self._step, training=False, label="evaluation")
            result.update({(f"{phase}.{k}" if phase else k): float(v) for k, v in out.items()})
        return result

    def adversarial_examples(self, attack: Any, **batch: Any) -> np.ndarray:
        """The inputs an attack makes from a batch (FGSM or PGD against the evaluation form)."""
        arrays, binding = self._prepare(batch)
        lowered, _ = self.training_plan("attack", binding, attack=as_attack(attack))
        return self.model.run_plan(lowered, arrays, step=self._step, training=False, label="attack")["adversarial"]

    # ---- whole datasets ----

    def prepare_data(self, data: Any, what: str, *, origin: Origin | None = None,
                     new_classes: bool = False) -> dict[str, np.ndarray]:
        """The arrays of `data` by input name, checked before any step (see datacheck.py): samples, shapes,
        dtypes, finiteness and label ranges, each error naming the array (or file), row and column. Class names
        (strings) for an integer input become labels through the model's `classes`; with new_classes (training)
        and no classes yet, the sorted distinct names become them."""
        arrays = as_named(self.model.inputs, data)
        for name, spec in self.model.inputs.items():
            if name in arrays and spec.dtype.startswith("i") and is_text(arrays[name]):
                if self.model.classes is None and not new_classes:
                    raise ValueError(f"{what}: '{name}' holds class names, but the model has no classes to map "
                                     f"them to (train on such labels first, or set program.classes)")
                arrays[name], self.model.classes = encode_labels(arrays[name], self.model.classes, what, name,
                                                                 origin)
        check_arrays(self.model.inputs, self.model.dims, arrays, what, origin)
        check_labels(self.label_ranges(), arrays, what, origin)
        return arrays

    def label_ranges(self) -> dict[str, tuple[int, str]]:
        """Integer inputs the loss reads as indices: the size they must stay below and the op that reads them."""
        if self._label_ranges is None:
            try:
                graph = self.training_graph("loss", self.model.dims).graph
            except DlcError:
                graph = None  # no loss: nothing indexes the labels
            self._label_ranges = label_ranges(graph) if graph is not None else {}
        return self._label_ranges

    def evaluate(self, data: Any, batch_size: int | None = None, attack: Any = None) -> dict[str, float]:
        """Loss and metrics over a dataset in evaluation mode, averaged over samples (robust ones under an
        `attack`)."""
        _check_count("batch_size", batch_size, 1)
        arrays = self.prepare_data(data, "evaluate data")
        n = len(next(iter(arrays.values())))
        size = batch_size if batch_size is not None else self.spec().batch_size or 256
        totals: dict[str, float] = {}
        for idx in batches(n, size, np.arange(n)):
            out = self.evaluate_batch(attack, **{k: v[idx] for k, v in arrays.items()})
            for k, v in out.items():
                totals[k] = totals.get(k, 0.0) + v * len(idx)
        return {k: v / n for k, v in totals.items()}

    def fit(self, data: Any, *, epochs: int | None = None, batch_size: int | None = None,
            validation: Any = None, callbacks: list[Callable[..., Any]] | None = None, shuffle: bool = True,
            verbose: bool = True) -> dict[str, list[float]]:
        """Trains for `epochs` more epochs; returns the history of loss and metrics per epoch. Shuffling for
        epoch e draws from a generator seeded by (seed, e), so resuming at an epoch boundary replays exactly
        the batches an uninterrupted run would have seen. Callbacks are called as cb(trainer, epoch, logs)
        after each epoch; one returning True stops training."""
        epochs, size = self.run_length(epochs, batch_size)
        self.apply_recipe_init()
        arrays = self.prepare_data(data, "fit data", new_classes=True)
        if validation is not None:
            validation = self.prepare_data(validation, "validation data")
        n = len(next(iter(arrays.values())))
        return fit_epochs(self, LocalStepper(self, arrays), n, epochs, size, validation=validation,
                          callbacks=callbacks, shuffle=shuffle, verbose=verbose)

    def run_length(self, epochs: int | None = None, batch_size: int | None = None) -> tuple[int, int]:
        """The epochs and batch size `fit` runs with these arguments: the recipe's where None (without one,
        1 epoch of batches of 32). Anything but a count (epochs >= 0, batch_size >= 1) is a ValueError."""
        _check_count("epochs", epochs, 0)
        _check_count("batch_size", batch_size, 1)
        spec = self.spec()
        return (epochs if epochs is not None else (spec.epochs or 1),
                batch_size if batch_size is not None else spec.batch_size or 32)

    def apply_recipe_init(self) -> None:
        """Loads the parameters the recipe's `init` names, before the first step only (later fits, and runs
        resumed from a checkpoint, keep what training made)."""
        init = self.spec().init
        if init is None or self._step != 0:
            return
        path = Path(init["path"])
        if not path.is_absolute():  # relative to the model file, as imports are
            path = Path(self.model.module.filename).parent / path
        with self.model.writing_params() as params:
            load_params(params, path, include=init["include"], exclude=init["exclude"], rename=init["rename"],
                        strict=init["strict"])

    # ---- checkpoints ----

    def save_checkpoint(self, path: str) -> None:
        """Parameters, running statistics, optimizer state and counters, atomically (see checkpoint.py)."""
        save_checkpoint(path, self.model.params, self._opt, step=self._step, epoch=self._epoch,
                        seed=self.model.seed, spec=self.spec(), run=self.run_state, run_tensors=self.run_tensors,
                        classes=self.model.classes)

    def load_checkpoint(self, path: str) -> None:
        """Restores parameters, optimizer state, counters, the run's state (a checkpoint written in the middle
        of an epoch resumes at the next batch of that epoch) and class names, when the file has them."""
        with self.model.writing_params() as params:
            self._step, self._epoch, self.run_state, self.run_tensors = load_checkpoint(path, params, self._opt)
        classes = checkpoint_classes(path)
        if classes is not None:
            self.model.classes = classes


def _nonfinite(result: Mapping[str, float], bad_gradients: list[str]) -> str:
    """What is not finite in a step's loss and gradients ("" if nothing)."""
    loss = next(v for k, v in result.items() if k.split(".")[-1] == "loss")
    if not np.isfinite(loss):
        return f"the loss is {loss}"
    if bad_gradients:
        more = " ..." if len(bad_gradients) > 5 else ""
        return f"the gradient of {', '.join(bad_gradients[:5])}{more} is not finite"
    return ""


def _check_given(graph: Graph) -> None:
    """An input the plan reads whose sizes no given input bound (a graph's edges, `src: i32[E]`) was not given:
    a ValueError naming it, before compiling a plan that needs every size."""
    read = step_graphs.strip_unused_inputs(eliminate_dead_code(graph, PassContext())).inputs
    for name, v in read:
        if name != step_graphs.HYPER and any(not isinstance(d, int) for d in graph.values[v].shape):
            raise ValueError(f"missing input '{name}' ({graph.values[v]}): this training step reads it")


def _check_count(name: str, value: Any, low: int) -> None:
    """fit/evaluate arguments: None means the recipe's value; anything else must be an integer >= low."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low):
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
