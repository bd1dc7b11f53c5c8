"""Unbalanced brackets are reported at the bracket (line, column and caret of the opener), not where the parser
gave up, and a bare op name given as a keyword value suggests quoting it (issue 10, item 8)."""

from __future__ import annotations

from pathlib import Path

from test_diagnostics import HEAD, check, diagnose


def test_missing_brace_points_at_the_opener(tmp_path: Path) -> None:
    source = HEAD + "block f(a) {\n  b = relu(a)\n  return b\ny = f(x)\noutput y\n"
    file, text = diagnose(tmp_path, source)
    check(text, file, 2, 12, "'{' is never closed: expected '}' before the end of the file", "block f(a) {")
    assert "unexpected end of file" not in text


def test_missing_brace_of_train_block(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, HEAD + "output y = dense(x, 3)\ntrain {\n  epochs = 3\n")
    check(text, file, 3, 7, "'{' is never closed", "train {")


def test_missing_paren_points_at_the_call(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, HEAD + "y = dense(x, 3\noutput y\n")
    check(text, file, 2, 10, "'(' is never closed: expected ')' before 'output' on line 3", "y = dense(x, 3")


def test_missing_paren_inside_block_closed_later_by_brace(tmp_path: Path) -> None:
    source = HEAD + "block f(a) {\n  b = relu(a\n  return b\n}\ny = f(x)\noutput y\n"
    file, text = diagnose(tmp_path, source)
    check(text, file, 3, 11, "'(' is never closed: expected ')' before 'return' on line 4", "  b = relu(a")


def test_wrong_closer_on_the_same_line(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, HEAD + "y = concat([x, x], axis=1)\nz = concat([y, x, axis=1)\noutput z\n")
    check(text, file, 3, 12, "'[' is closed by ')' (column 25): expected ']'", "z = concat([y, x, axis=1)")


def test_unmatched_closer(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, HEAD + "y = relu(x))\noutput y\n")
    check(text, file, 2, 12, "unmatched ')': no '(' is open here", "y = relu(x))")


def test_brackets_in_strings_and_comments_do_not_count(tmp_path: Path) -> None:
    source = HEAD + "# a comment with ( and {\ny = dense(x, 3, init=\"he_uniform\"  # )\noutput y\n"
    file, text = diagnose(tmp_path, source)
    check(text, file, 3, 10, "'(' is never closed: expected ')' before 'output' on line 4", None)


def test_wrapped_list_missing_comma_stays_at_the_token(tmp_path: Path) -> None:
    """Balanced brackets: the parser's own message, at the token after the missing comma."""
    file, text = diagnose(tmp_path, HEAD + "y = concat([x,\n  x\n  x], axis=1)\noutput y\n")
    check(text, file, 4, 3, "unexpected 'x'", "  x], axis=1)")


def test_unquoted_activation_suggests_quoting(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, HEAD + "y = dense(x, 3, activation=relu)\noutput y\n")
    check(text, file, 2, 28, "'relu' is an op; to pass it as text, quote it: activation=\"relu\"",
          "y = dense(x, 3, activation=relu)")
    assert "relu(...)" not in text


def test_unquoted_initializer_suggests_quoting(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, HEAD + "y = dense(x, 3, init=he_uniform)\noutput y\n")
    check(text, file, 2, 22, "undefined name 'he_uniform'; to pass it as text, quote it: init=\"he_uniform\"",
          "y = dense(x, 3, init=he_uniform)")


def test_undefined_tensor_keyword_keeps_did_you_mean(tmp_path: Path) -> None:
    file, text = diagnose(tmp_path, HEAD + "y = dense(x, units=xx)\noutput y\n")
    check(text, file, 2, 20, "undefined name 'xx'; did you mean 'x'?", "y = dense(x, units=xx)")
    assert "quote" not in text
