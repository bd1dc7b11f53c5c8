"""Issue 10, item 9: internal names never reach the user. Shapes print as [N, 8, 14], errors inside a composite
op name the op the user called (cross_entropy, not its primitive), override text is shown as written."""

from __future__ import annotations

import numpy as np
import pytest

import dlc
from dlc.dims import sym


def test_symbolic_shapes_print_by_name_in_lists() -> None:
    assert str([sym("N"), 8, 14]) == "[N, 8, 14]"


def test_composite_op_errors_name_the_op_the_user_called() -> None:
    source = ("input x: f32[N, 8, 14, 10]\ninput y: i32[N]\noutput logits = relu(x)\n"
              "train {\n    loss = cross_entropy(logits, y)\n}\n")
    with pytest.raises(dlc.CompileError) as info:
        dlc.compile(source=source).spec()
    message = str(info.value)
    assert "cross_entropy: integer labels must have shape [N, 8, 14]" in message
    assert "softmax_xent" not in message and "Sym(" not in message


def test_override_text_is_shown_as_written() -> None:
    program = dlc.compile(source="input x: f32[N, 4]\noutput y = relu(x)\n")
    with pytest.raises(dlc.CompileError) as info:
        program.configure(loss="mse(y, target)")
    text = info.value.format()
    assert "undefined name 'target'" in text and "loss = mse(y, target)" in text and "__" not in text


def test_shape_mismatch_in_a_call_names_symbols() -> None:
    program = dlc.compile(source="input a: f32[N, 2]\ninput b: f32[N, 2]\noutput c = a + b\n")
    with pytest.raises(ValueError) as info:
        program(a=np.zeros((3, 2), np.float32), b=np.zeros((4, 2), np.float32))
    assert "Sym(" not in str(info.value)
