"""`Program`: a compiled model you call with NumPy arrays, and train.

A Program is a thin front over two parts (composition, no mixins):
- `program.model`, the `CompiledModel`: graph, parameters (the persistent region whose memory never moves),
  inference plans and lowering;
- `program.trainer`, a `Trainer` holding that model: the train block's recipe, optimizer state, step and epoch
  counters and the training plans.

Calling it validates the inputs, binds the symbolic dimensions from their shapes, picks or compiles the plan,
and runs it in C++ in one call with the GIL released. The training methods (`configure`, `fit`, `train_step`,
`save_checkpoint`, ...) delegate to the trainer; code that needs several training setups over the same
parameters creates more `Trainer(program.model)`s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .calibration import PrecisionControl
from .frontend.modules import Module
from .inference import InferenceCalls
from .ir import Graph
from .lowering import LoweredPlan
from .model import CompiledModel, TensorSpec, readonly_views, spec_of
from .passes import PassContext
from .training.recipe import TrainSpec
from .training.trainer import Trainer
from .training.transfer import LoadReport, load_params, save_params

__all__ = ["Program", "TensorSpec", "readonly_views", "spec_of"]


class Program(PrecisionControl):
    def __init__(self, module: Module, *, dims: Mapping[str, int] | None = None, dtype: str = "f32",
                 fuse: bool = True, seed: int = 0, strict_dtypes: bool = False, precision: str = "f32"):
        self.model = CompiledModel(module, dims=dims, dtype=dtype, fuse=fuse, seed=seed, strict_dtypes=strict_dtypes,
                                   precision=precision)
        self.trainer = Trainer(self.model)
        self._training = False
        self._calls = InferenceCalls(self.model)

    # ---- description ----

    @property
    def graph(self) -> Graph:
        """The typed graph as written (symbolic dimensions unbound), before any pass."""
        return self.model.graph

    @property
    def inputs(self) -> dict[str, TensorSpec]:
        return self.model.inputs

    @property
    def outputs(self) -> dict[str, TensorSpec]:
        return self.model.outputs

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Parameters by hierarchical name, as read-only views of the live arrays (use set_params to change
        them): training writes them in place, so a view shows the values of the moment it is read, not of the
        moment it was taken; copy them for a snapshot."""
        return self.model.params

    @property
    def dtype(self) -> str:
        return self.model.dtype

    @property
    def seed(self) -> int:
        return self.model.seed

    def set_params(self, mapping: Mapping[str, Any], strict: bool = True) -> None:
        """Copies new values into the parameters. Names and shapes are checked before anything changes."""
        self.model.set_params(mapping, strict)

    @property
    def classes(self) -> list[str] | None:
        """The class names of the labels (label k is classes[k]) when the program was trained on names (string
        labels in fit, a CSV label column of text): saved with checkpoints and artifacts; predict adds each
        answer's name. None for integer labels."""
        return None if self.model.classes is None else list(self.model.classes)

    @classes.setter
    def classes(self, names: Sequence[str] | None) -> None:
        if names is not None:
            names = [str(n) for n in names]
            if len(set(names)) != len(names):
                raise ValueError("classes must be distinct names")
        self.model.classes = names

    # ---- modes ----

    def train(self) -> "Program":
        """Training mode: dropout is active when the program is called."""
        self._training = True
        return self

    def eval(self) -> "Program":
        """Evaluation mode (the default): dropout is the identity."""
        self._training = False
        return self

    @property
    def training(self) -> bool:
        return self._training

    # ---- compilation ----

    def bind_dims(self, arrays: Mapping[str, np.ndarray], names: list[str] | None = None) -> dict[str, int]:
        """Binds symbolic dimensions from input shapes; every mismatch is a ValueError naming the input."""
        return self.model.bind_dims(arrays, names)

    def pass_context(self, training: bool) -> PassContext:
        return self.model.pass_context(training)

    def compile_plan(self, dims: Mapping[str, int] | None = None, training: bool | None = None) -> LoweredPlan:
        """The inference plan for a binding of the symbolic dimensions (cached)."""
        return self.model.inference_plan(dims, self._training if training is None else training)

    @property
    def memory(self) -> dict[str, int]:
        """Planned memory of the inference plan: for the dims given at compile time, else for the binding
        of the most recent call; packed_weights_bytes is what its packed weights hold beside the arena."""
        binding = dict(self._calls.last_binding) if self._calls.last_binding else None
        return self.compile_plan(binding).memory_report()

    # ---- running ----

    def check_inputs(self, inputs: Mapping[str, Any], required: list[str]) -> dict[str, np.ndarray]:
        return self.model.check_inputs(inputs, required)

    def __call__(self, **inputs: Any) -> dict[str, np.ndarray]:
        return self._calls(inputs, training=self._training, step=self.trainer.step_count)

    def run_plan(self, lowered: LoweredPlan, arrays: Mapping[str, np.ndarray], step: int | None = None,
                 training: bool | None = None) -> dict[str, np.ndarray]:
        """Runs a plan; dropout masks are seeded by the trainer's step count unless `step` is given."""
        return self.model.run_plan(lowered, arrays, step=self.trainer.step_count if step is None else step,
                                   training=self._training if training is None else training)

    def predict(self, inputs: Any, batch_size: int | None = None) -> dict[str, np.ndarray]:
        """The outputs for a whole dataset in evaluation mode (dropout off), run `batch_size` samples at a time
        along the first axis (default: all at once) and concatenated. `inputs`: {input name: array}, or a
        tuple of arrays in input order; inputs the outputs do not need (labels) are ignored. The inputs are
        checked first, as fit's are (shapes, dtypes, NaN/inf named by row). With `classes`, each output with
        one score per class also gets `<output>_class`: the name of the highest-scoring class per sample."""
        return self._calls.predict(inputs, batch_size, step=self.trainer.step_count)

    # ---- training (delegated to self.trainer) ----

    def configure(self, **settings: Any) -> "Program":
        """Overrides entries of the model's train block (see Trainer.configure)."""
        self.trainer.configure(**settings)
        return self

    def freeze(self, *prefixes: str) -> "Program":
        """Stops training the parameters under these name prefixes (batch-norm statistics included)."""
        self.trainer.freeze(*prefixes)
        return self

    def unfreeze(self, *prefixes: str) -> "Program":
        self.trainer.unfreeze(*prefixes)
        return self

    def spec(self) -> TrainSpec:
        return self.trainer.spec()

    @property
    def step_count(self) -> int:
        """Optimizer steps taken so far."""
        return self.trainer.step_count

    @property
    def current_phase(self) -> str | None:
        """The training phase the next train_step runs (None for a single-phase recipe)."""
        return self.trainer.current_phase

    @property
    def epoch(self) -> int:
        return self.trainer.epoch

    @property
    def optimizer_state(self) -> dict[str, np.ndarray]:
        return self.trainer.optimizer_state

    def training_plan(self, kind: str, binding: Mapping[str, int], **options: Any) -> tuple[LoweredPlan, Any]:
        return self.trainer.training_plan(kind, binding, **options)

    def loss_and_grads(self, mode: str = "train", **batch: Any) -> tuple[float, dict[str, np.ndarray]]:
        """The loss and its gradients by parameter (and input_grads input) name; no optimizer update. The
        default mode="train" runs the forward pass as a training step does, so batch norm's running statistics
        are updated (as a PyTorch forward in train mode). mode="eval": gradients of the evaluation form (dropout
        off, batch norm on running statistics), changing nothing."""
        return self.trainer.loss_and_grads(mode, **batch)

    def train_step(self, **batch: Any) -> dict[str, float]:
        """One compiled step: forward, loss, backward and the optimizer update. Returns loss and metrics."""
        return self.trainer.train_step(**batch)

    def evaluate_batch(self, attack: Any = None, **batch: Any) -> dict[str, float]:
        return self.trainer.evaluate_batch(attack, **batch)

    def evaluate(self, data: Any, batch_size: int | None = None, attack: Any = None) -> dict[str, float]:
        """Loss and metrics over a dataset in evaluation mode, averaged over samples; under `attack`
        (("fgsm", {"eps": 0.1, "clip": [0, 1]}) or ("pgd", {...})), robust ones."""
        return self.trainer.evaluate(data, batch_size, attack)

    def adversarial_examples(self, attack: Any, **batch: Any) -> np.ndarray:
        """The adversarial inputs an FGSM or PGD attack makes from a batch (see training/adversarial.py)."""
        return self.trainer.adversarial_examples(attack, **batch)

    def load_params(self, path: str | Path, include: Sequence[str] | None = None, exclude: Sequence[str] = (),
                    rename: Mapping[str, str] | Sequence[tuple[str, str]] = (), strict: bool = True) -> LoadReport:
        """Loads some of a checkpoint's parameters, or of a plain safetensors file (transfer learning): rename
        prefixes, select by name prefix or glob, check shapes; returns what was loaded, skipped, missing and
        unexpected. See training/transfer.py."""
        with self.model.writing_params() as params:
            return load_params(params, path, include=include, exclude=exclude, rename=rename, strict=strict)

    def save_params(self, path: str | Path) -> None:
        """Writes the parameters and running statistics as a plain safetensors file (names as in
        `program.params`, no dlc metadata needed to read it): what `safetensors.torch.load_file` or
        `safetensors.numpy.load_file` read, and what `load_params` and `dlc train --init` read back."""
        save_params(path, self.model.params, self.model.module.filename)

    def fit(self, data: Any, *, epochs: int | None = None, batch_size: int | None = None,
            validation: Any = None, callbacks: list[Callable[..., Any]] | None = None, shuffle: bool = True,
            verbose: bool = True) -> dict[str, list[float]]:
        """Trains for `epochs` more epochs; returns the history of loss and metrics per epoch."""
        return self.trainer.fit(data, epochs=epochs, batch_size=batch_size, validation=validation,
                                callbacks=callbacks, shuffle=shuffle, verbose=verbose)

    def save_checkpoint(self, path: str) -> None:
        self.trainer.save_checkpoint(path)

    def load_checkpoint(self, path: str) -> None:
        self.trainer.load_checkpoint(path)

    # ---- interchange ----

    def to_onnx(self, path: str, opset: int | None = None) -> None:
        """Writes the inference graph as an ONNX file (needs the onnx extra); see dlc/onnx/export.py."""
        from .onnx.export import export_program
        export_program(self, path, opset=opset)

    # ---- summary ----

    def summary(self) -> str:
        from .summary import summarize
        return summarize(self.model)

    def __repr__(self) -> str:
        from .display import one_line
        steps = self.trainer.step_count
        return one_line("Program", self.model.module.filename, self.model,
                        f", {steps:,} training steps" if steps else "")

    def _repr_html_(self) -> str:
        """A notebook's rich display: the summary table, and the graph as SVG when Graphviz is installed."""
        from .display import rich_html
        return rich_html("Program", self.model.module.filename, self.model)
