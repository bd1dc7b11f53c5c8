"""Explains a syntax error caused by an unbalanced bracket at the bracket, not where the parser gave up.

Lark only notices a missing `}` at the end of the file, and a missing `)` or `]` at the first token that cannot
continue the call (newlines inside brackets do not end a statement, so that is often the next line). The user
needs the opener that was never closed, so after a parse failure `diagnose` matches the brackets of the text
(skipping strings and comments) and, when an unclosed opener explains the failure, returns that diagnosis.
"""

from __future__ import annotations

from dataclasses import dataclass

CLOSER_OF = {"(": ")", "[": "]", "{": "}"}
OPENER_OF = {v: k for k, v in CLOSER_OF.items()}


@dataclass(frozen=True)
class Bracket:
    char: str
    line: int
    col: int
    offset: int


@dataclass(frozen=True)
class BracketProblem:
    """An opener without its closer (`closed_by` is the wrong closer that ended it, or None at the end of the
    file), or a closer without an opener (`opener` is None)."""

    opener: Bracket | None
    closed_by: Bracket | None


def scan(text: str) -> BracketProblem | None:
    """The first bracket mismatch in `text`, or None when every bracket is matched."""
    stack: list[Bracket] = []
    line, col = 1, 0
    in_string = in_comment = False
    for offset, ch in enumerate(text):
        col += 1
        if ch == "\n":
            line, col = line + 1, 0
            in_string = in_comment = False  # strings cannot span lines (see STRING in the grammar)
            continue
        if in_comment:
            continue
        if in_string:
            in_string = ch != '"'
            continue
        if ch == "#":
            in_comment = True
        elif ch == '"':
            in_string = True
        elif ch in CLOSER_OF:
            stack.append(Bracket(ch, line, col, offset))
        elif ch in OPENER_OF:
            here = Bracket(ch, line, col, offset)
            if not stack:
                return BracketProblem(None, here)
            top = stack.pop()
            if CLOSER_OF[top.char] != ch:
                return BracketProblem(top, here)
    return BracketProblem(stack[-1], None) if stack else None


def diagnose(text: str, error_line: int, error_col: int, token: str | None) -> tuple[str, int, int] | None:
    """(message, line, col) blaming an unbalanced bracket for a parse error at (error_line, error_col) on
    `token` (as the message shows it, e.g. `'output'`; None: the end of the file), or None when the
    brackets do not explain it (the parser's own message is better then)."""
    problem = scan(text)
    if problem is None:
        return None
    opener, closer = problem.opener, problem.closed_by
    if opener is None:
        assert closer is not None
        if (closer.line, closer.col) == (error_line, error_col):
            return f"unmatched '{closer.char}': no '{OPENER_OF[closer.char]}' is open here", closer.line, closer.col
        return None
    if (opener.line, opener.col) >= (error_line, error_col):
        return None  # the parser failed before reaching the bracket: its message is about something else
    if closer is not None and (closer.line, closer.col) < (error_line, error_col):
        return None  # the parser got past the wrong closer, so the mismatch is not what stopped it
    expected = CLOSER_OF[opener.char]
    if token is None or error_line > opener.line:  # the statement ran on past the line of the opener
        before = "the end of the file" if token is None else f"{token} on line {error_line}"
        return f"'{opener.char}' is never closed: expected '{expected}' before {before}", opener.line, opener.col
    if closer is not None:
        return (f"'{opener.char}' is closed by '{closer.char}' (column {closer.col}): expected '{expected}'",
                opener.line, opener.col)
    return None  # a mistake inside one line of a call reads better at the offending token
