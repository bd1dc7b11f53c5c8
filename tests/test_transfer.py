"""Transfer learning: partial loading (include/exclude/rename/strict, the report, shape errors), freezing and
learning-rate groups by glob, a frozen backbone bit-identical after training, the recipe's `init`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import dlc
from dlc.errors import CheckpointError

NET = """
input x: f32[N, 1, 4, 4]
input y: i32[N]
c1 = conv2d(x, 2, padding=1, bias=false) |> batch_norm |> relu
c2 = conv2d(c1, 2, padding=1) |> relu |> dropout(0.2)
output logits = dense(flatten(c2), CLASSES)
train {
    loss = cross_entropy(logits, y)
    optimizer = sgd(lr=0.1)
}
"""


def _net(classes: int, seed: int = 0, prefix: str = "", dropout: bool = True) -> dlc.Program:
    source = NET.replace("CLASSES", str(classes))
    if not dropout:
        source = source.replace(" |> dropout(0.2)", "")
    if prefix:
        source = source.replace("c1", prefix + "1").replace("c2", prefix + "2")
    return dlc.compile(source=source, seed=seed)


def _batch(seed: int = 0, n: int = 6) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": rng.uniform(0, 1, (n, 1, 4, 4)).astype(np.float32), "y": rng.integers(0, 3, n).astype(np.int32)}


@pytest.fixture
def pretrained(tmp_path: Path) -> tuple[dlc.Program, Path]:
    source = _net(5, seed=1)
    source.train_step(**_batch())  # running statistics move away from their initial values
    path = tmp_path / "pre.ckpt"
    source.save_checkpoint(str(path))
    return source, path


def test_backbone_loads_and_head_is_reported(pretrained: tuple[dlc.Program, Path]) -> None:
    source, path = pretrained
    target = _net(3, seed=2)
    head_before = np.array(target.params["logits.weight"])
    report = target.load_params(path, include=["c1", "c2"])
    assert report.loaded == sorted(n for n in source.params if n.startswith(("c1.", "c2.")))
    assert "c1.batch_norm.running_mean" in report.loaded
    assert report.skipped == ["logits.bias", "logits.weight"]
    assert report.missing == [] and report.unexpected == []
    for name in report.loaded:
        np.testing.assert_array_equal(target.params[name], source.params[name])
    np.testing.assert_array_equal(target.params["logits.weight"], head_before)


def test_strict_reports_what_differs(pretrained: tuple[dlc.Program, Path]) -> None:
    _, path = pretrained
    target = _net(3, seed=2)
    before = {k: np.array(v) for k, v in target.params.items()}
    with pytest.raises(CheckpointError, match=r"logits\.(bias|weight)' has shape"):  # the head's shape differs
        target.load_params(path, strict=False)
    with pytest.raises(CheckpointError, match="shape"):
        target.load_params(path, include=["*.weight"], strict=False)
    for k, v in target.params.items():  # nothing changed
        np.testing.assert_array_equal(v, before[k])


def test_exclude_glob_and_missing_unexpected(pretrained: tuple[dlc.Program, Path]) -> None:
    _, path = pretrained
    target = _net(3, seed=2)
    report = target.load_params(path, exclude=["logits.*", "*.running_*"], strict=False)
    assert "c1.batch_norm.running_mean" in report.skipped and "logits.weight" in report.skipped
    assert "c1.batch_norm.running_var" not in report.loaded
    assert report.missing == [] and report.unexpected == []
    renamed = _net(3, seed=2, prefix="enc")  # enc1.* is selected, the checkpoint has c1.*
    with pytest.raises(CheckpointError, match=r"missing: \['enc1.batch_norm.bias'"):
        renamed.load_params(path, include=["enc1"], strict=True)
    report = renamed.load_params(path, include=["enc1"], strict=False)
    assert report.loaded == [] and "enc1.conv2d.weight" in report.missing and "c1.conv2d.weight" in report.skipped


def test_rename_prefixes(pretrained: tuple[dlc.Program, Path]) -> None:
    source, path = pretrained
    target = _net(3, seed=2, prefix="enc")  # enc1.*, enc2.* instead of c1.*, c2.*
    with pytest.raises(CheckpointError, match="unexpected"):
        target.load_params(path, include=["c1", "c2"])
    report = target.load_params(path, rename={"c1.": "enc1.", "c2.": "enc2."}, include=["enc*"], strict=False)
    assert report.missing == [] and report.unexpected == []
    np.testing.assert_array_equal(target.params["enc2.conv2d.weight"], source.params["c2.conv2d.weight"])
    report = target.load_params(path, rename={"c1.": "enc1."}, include=["enc1", "c2"], strict=False)
    assert report.unexpected == ["c2.conv2d.bias", "c2.conv2d.weight"]
    assert report.missing == []


def test_frozen_backbone_is_bit_identical_after_training(pretrained: tuple[dlc.Program, Path]) -> None:
    _, path = pretrained
    target = _net(3, seed=2)
    target.load_params(path, include=["c*"])
    target.freeze("c*")  # a glob: c1 (batch norm and its running statistics included) and c2
    backbone = {k: np.array(v) for k, v in target.params.items() if k.startswith("c")}
    head = np.array(target.params["logits.weight"])
    for k in range(3):
        target.train_step(**_batch(k))
    for k, v in backbone.items():
        assert np.array_equal(target.params[k], v) and target.params[k].tobytes() == v.tobytes(), k
    assert not np.array_equal(target.params["logits.weight"], head)


def test_learning_rate_groups_by_glob() -> None:
    program = _net(3, seed=2, dropout=False)
    program.configure(lr_mult=[["c*", 0.1]], optimizer=("sgd", {"lr": 0.5}))
    batch = _batch()
    before = {k: np.array(v) for k, v in program.params.items()}
    _, grads = program.loss_and_grads(**batch)
    program.train_step(**batch)
    for name, g in grads.items():
        rate = 0.05 if name.startswith("c") else 0.5
        np.testing.assert_allclose(program.params[name], before[name] - rate * g, rtol=1e-5, atol=1e-7)


def test_recipe_init_loads_before_the_first_step(pretrained: tuple[dlc.Program, Path], tmp_path: Path) -> None:
    source, path = pretrained
    model = tmp_path / "fine.dlm"
    model.write_text(NET.replace("CLASSES", "3").replace(
        "optimizer = sgd(lr=0.1)", 'optimizer = sgd(lr=0.0)\n    init = load_params(path="pre.ckpt", include=["c1"])'))
    program = dlc.compile(model, seed=2)
    program.fit(_batch(), epochs=1, batch_size=6, verbose=False)
    np.testing.assert_array_equal(program.params["c1.conv2d.weight"], source.params["c1.conv2d.weight"])
    assert not np.array_equal(program.params["c2.conv2d.weight"], source.params["c2.conv2d.weight"])
