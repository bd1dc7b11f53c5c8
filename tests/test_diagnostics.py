"""Every class of model error: a located `file:line:col: error:` diagnostic, the quoted source line and a caret
under the offending character, and never a Python exception other than CompileError."""

from __future__ import annotations

from pathlib import Path

import pytest

import dlc

HEAD = "input x: f32[4, 3]\n"


def diagnose(tmp_path: Path, source: str | bytes, name: str = "m.dlm") -> tuple[str, str]:
    """Compiles a model file that must fail; returns (its path as shown, the formatted diagnostic)."""
    path = tmp_path / name
    path.write_bytes(source if isinstance(source, bytes) else source.encode())
    with pytest.raises(dlc.CompileError) as info:
        dlc.compile(path)
    return str(path), info.value.format()


def check(text: str, file: str, line: int, col: int, message: str, source_line: str | None) -> list[str]:
    """Asserts the head line, the message, the quoted line and the caret column; returns the note lines."""
    head, *rest = text.splitlines()
    assert head.startswith(f"{file}:{line}:{col}: error: "), head
    assert message in head, head
    if source_line is None:
        return rest
    shown, caret = rest[0], rest[1]
    assert shown.startswith("    ") and caret.strip() == "^", rest
    col_shown = caret.index("^")
    if shown.startswith("    ..."):  # a long line is shown as a window around the caret
        assert shown[col_shown] == source_line[col - 1]
    else:
        assert shown == "    " + source_line
        assert col_shown == 4 + col - 1
    return rest[2:]


def test_syntax_error(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, HEAD + "y = dense(x, 3\noutput y\n")
    check(text, file, 2, 10, "'(' is never closed: expected ')' before 'output' on line 3", "y = dense(x, 3")


def test_unexpected_character(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, HEAD + "y = x $ 2\noutput y\n")
    check(text, file, 2, 7, "unexpected character '$'", "y = x $ 2")


def test_unknown_op_suggests(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, HEAD + "y = dense2(x, 3)\noutput y\n")
    check(text, file, 2, 5, "unknown op 'dense2'; did you mean 'dense'?", "y = dense2(x, 3)")


def test_unknown_keyword(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, HEAD + "y = dense(x, 3, bogus=1)\noutput y\n")
    check(text, file, 2, 17, "unknown keyword argument 'bogus' for dense (it takes: units, bias",
          "y = dense(x, 3, bogus=1)")


def test_duplicate_keyword(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, HEAD + "y = dense(x, units=3, units=4)\noutput y\n")
    check(text, file, 2, 23, "duplicate keyword argument 'units'", "y = dense(x, units=3, units=4)")


def test_undefined_name(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, HEAD + "y = relu(xx)\noutput y\n")
    check(text, file, 2, 10, "undefined name 'xx'; did you mean 'x'?", "y = relu(xx)")


def test_reassignment(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, HEAD + "y = relu(x)\ny = relu(y)\noutput y\n")
    check(text, file, 3, 1, "'y' is already defined; names are assigned once", "y = relu(y)")


def test_too_few_positional(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, HEAD + "y = add(x)\noutput y\n")
    check(text, file, 2, 5, "add takes 2 tensor arguments (a, b), got 1", "y = add(x)")


def test_too_many_positional(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, HEAD + "y = relu(x, x, x)\noutput y\n")
    check(text, file, 2, 5, "relu takes at most 1 positional", "y = relu(x, x, x)")


def test_shape_mismatch_names_both_shapes(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, "input x: f32[N, 3]\ninput b: f32[4]\ny = x + b\noutput y\n")
    notes = check(text, file, 3, 7, "shapes [N, 3] and [4] do not broadcast", "y = x + b")
    assert notes == []


def test_shape_mismatch_in_block_has_call_path(tmp_path: Path) -> None:
    src = "input x: f32[N, 3]\ninput b: f32[4]\nblock f(a, c) {\n  return a + c\n}\ny = f(x, b)\noutput y\n"
    file, text = diagnose(tmp_path, src)
    notes = check(text, file, 4, 12, "shapes [N, 3] and [4] do not broadcast", "  return a + c")
    assert notes == [f"note: in block call path: f ({file}:6)"]


def test_matmul_inner_dimension(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, "input x: f32[N, 3]\ninput w: f32[4, 5]\ny = x @ w\noutput y\n")
    check(text, file, 3, 7, "matmul: inner dimensions differ: f32[N, 3] @ f32[4, 5] (3 vs 4)", "y = x @ w")


def test_unknown_dtype(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, "input x: f33[4, 3]\noutput x\n")
    check(text, file, 1, 10, "unknown dtype 'f33' (use one of f32, f64", "input x: f33[4, 3]")


def test_unknown_initializer(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, HEAD + "param W: f32[3, 3] = bogus_init\ny = x @ W\noutput y\n")
    check(text, file, 2, 22, "unknown initializer 'bogus_init' (known: constant", "param W: f32[3, 3] = bogus_init")


def test_unknown_layer_initializer(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, HEAD + 'y = dense(x, 3, init="bogus")\noutput y\n')
    check(text, file, 2, 5, "unknown initializer 'bogus'", 'y = dense(x, 3, init="bogus")')


def test_nul_byte(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, b"input x\x00: f32[3]\noutput x\n")
    check(text, file, 1, 8, "the file contains a NUL byte (is it a binary file?)", None)


def test_invalid_utf8(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, b"input x: f32[3]\noutput \xff\xfe\x00\x01 x\n")
    lines = check(text, file, 2, 8, "the file is not UTF-8 text (is it a binary file?)", None)
    assert lines == []  # undecodable text is not echoed to the terminal


def test_empty_file(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, "")
    check(text, file, 1, 1, "is empty: a model needs at least an input and an output", None)


def test_deep_parentheses(tmp_path: Path) -> None:
    line = "y = " + "(" * 200 + "x" + ")" * 200
    file, text = diagnose(tmp_path, HEAD + line + "\noutput y\n")
    check(text, file, 2, 4 + 65, "brackets nested more than 64 deep", line)


def test_very_long_pipe_chain(tmp_path: Path) -> None:
    line = "y = x" + " |> relu" * 1_000
    file, text = diagnose(tmp_path, HEAD + line + "\noutput y\n")
    head = text.splitlines()[0]
    col = int(head.split(":")[2])
    check(text, file, 2, col, "expression nested more than 400 deep; split it into statements", line)


def test_huge_integer_literal(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, HEAD + "y = dense(x, 99999999999999999999999)\noutput y\n")
    check(text, file, 2, 14, "integer literal 99999999999999999999... is too large",
          "y = dense(x, 99999999999999999999999)")


def test_huge_float_literal(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, HEAD + "y = x * 1e999\noutput y\n")
    check(text, file, 2, 9, "number 1e999 is out of range", "y = x * 1e999")


def test_import_missing_file(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, 'import "nope.dlm"\n' + HEAD + "output x\n")
    check(text, file, 1, 8, "cannot import 'nope.dlm': no such file", 'import "nope.dlm"')


def test_import_cycle(tmp_path: Path) -> None:
    (tmp_path / "b.dlm").write_text('import "m.dlm"\n')
    _, text = diagnose(tmp_path, 'import "b.dlm"\n' + HEAD + "output x\n")
    check(text, str(tmp_path / "b.dlm"), 1, 8, "import cycle: m.dlm imports itself", 'import "m.dlm"')


def test_missing_output(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, HEAD + "y = relu(x)\n")
    check(text, file, 1, 1, "the model declares no output (add `output NAME`)", "input x: f32[4, 3]")


def test_return_at_top_level(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, HEAD + "return x\n")
    check(text, file, 2, 1, "return outside a block", "return x")


def test_block_without_return(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, HEAD + "block f(a) {\n  b = relu(a)\n}\ny = f(x)\noutput y\n")
    check(text, file, 2, 7, "block f has no return statement", "block f(a) {")


def test_recursive_block(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, HEAD + "block f(a) {\n  return f(a)\n}\ny = f(x)\noutput y\n")
    check(text, file, 3, 10, "block calls nested more than 32 deep (is 'f' recursive?)", "  return f(a)")


# ---- regression tests for bugs found while writing this suite ----

def test_number_folding_overflow(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, HEAD + "y = x * (1e300 ** 2)\noutput y\n")
    check(text, file, 2, 16, "out of range", "y = x * (1e300 ** 2)")


def test_computed_integer_too_large(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, HEAD + "y = dense(x, 10 ** 20)\noutput y\n")
    check(text, file, 2, 17, "integer too large", "y = dense(x, 10 ** 20)")
    file, text = diagnose(tmp_path, HEAD + "y = dense(x, 2 ** 45)\noutput y\n")
    check(text, file, 2, 5, "'units' = 35184372088832 is too large", "y = dense(x, 2 ** 45)")


def test_bad_attribute_names_op_once(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, HEAD + 'y = cast(x, "f16")\noutput y\n')
    check(text, file, 2, 5, "cast: 'dtype' must be one of", 'y = cast(x, "f16")')
    assert "cast: cast:" not in text


def test_dropout_rate_names_dropout(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, HEAD + "y = dropout(x, rate=1.5)\noutput y\n")
    check(text, file, 2, 5, "rate must be in [0, 1)", "y = dropout(x, rate=1.5)")
    assert "dropout_mask_mul" not in text


def test_axis_of_a_scalar_and_a_non_list_perm_are_located_errors() -> None:
    # Found by the fuzzer: a reduction over axis 0 of a scalar reached its kernel ("kernel argument check
    # failed"), and transpose(x, 0) raised a TypeError from shape inference.
    for text, message in [("input x: f32[]\noutput y = sum(x, axis=0)\n", "out of range for a tensor of rank 0"),
                          ("input x: f32[3]\noutput y = transpose(x, 0)\n", "perm must be a list of axes"),
                          ("input x: f32[3]\noutput y = sum(x, axis=[0, true])\n", "must be an integer"),
                          ("input x: f32[]\noutput y = reshape(x, 0)\n", "must be a list of dimensions"),
                          ("input x: f32[3]\noutput y = broadcast_to(x, 3)\n", "must be a list of dimensions"),
                          ("input x: f32[]\noutput y = layer_norm(x)\n", "has none")]:
        with pytest.raises(dlc.CompileError, match=message) as info:
            dlc.compile(source=text)
        assert info.value.loc is not None
