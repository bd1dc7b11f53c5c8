"""`dlc fmt`: one layout for .dlm files, keeping every comment and the author's line breaks.

The formatter works on tokens, not on the parse tree, because the tree has no comments. The file is parsed
first (so only valid models are formatted and errors are located as usual), then each physical line is
re-spaced: one space around `=` and binary operators, after commas and colons, none inside brackets or in a
keyword argument (`init="he_uniform"`), and lines are indented four spaces per `{ }` level. Lines that
continue a statement (inside brackets, or starting with `|>`) keep their indent relative to the statement,
at least four spaces; trailing comments keep their column unless the code now reaches it. Runs of blank lines
become one. Each rule depends only on the output of the rule before, so formatting is idempotent, and the
formatted text parses to the same tree (tests/test_format.py checks both on every model in models/).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .parser import parse

_TOKEN = re.compile(r"""
    (?P<ws>[ \t\f]+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"[^"\n]*")
  | (?P<number>(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:[eE][+-]?[0-9]+)?)
  | (?P<name>[A-Za-z_][A-Za-z_0-9]*)
  | (?P<op>\|>|\*\*|==|!=|<=|>=|[-+*/@<>=,;:.()\[\]{}])
""", re.VERBOSE)

# Words that start a statement or join expressions; a name after which `(` is a call is anything else.
_KEYWORDS = {"import", "from", "as", "input", "param", "output", "block", "return", "train", "if", "else",
             "repeat"}
_CONSTANTS = {"true", "false", "none"}
_BINARY = {"|>", "**", "==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/", "@"}
INDENT = "    "


@dataclass
class _Line:
    indent: int  # columns of leading whitespace in the input (tabs count as one)
    tokens: list[str]
    comment: str | None
    comment_col: int  # 0-based column of the comment in the input


def _split_lines(text: str) -> list[_Line]:
    lines = []
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        stripped = raw.lstrip(" \t\f")
        tokens: list[str] = []
        comment, comment_col = None, 0
        pos = 0
        while pos < len(raw):
            match = _TOKEN.match(raw, pos)
            if match is None:  # cannot happen after a successful parse; keep the rest verbatim
                tokens.append(raw[pos:].strip())
                break
            kind = match.lastgroup
            if kind == "comment":
                comment, comment_col = match.group().rstrip(), pos
            elif kind != "ws":
                tokens.append(match.group())
            pos = match.end()
        lines.append(_Line(len(raw) - len(stripped), tokens, comment, comment_col))
    return lines


def _ends_operand(token: str) -> bool:
    """Whether a token can end an operand, so that a `-` after it subtracts rather than negates."""
    return token in (")", "]") or token in _CONSTANTS or token[0] == '"' or token[0].isdigit() \
        or token[0] == "." and len(token) > 1 or (token[0].isalpha() or token[0] == "_") and token not in _KEYWORDS


class _Spacer:
    """Joins the tokens of one line; the bracket stack runs across lines, for wrapped calls and lists."""

    def __init__(self) -> None:
        self.brackets: list[list[bool]] = []  # per open bracket: [is '(', current argument has a ':']

    def join(self, tokens: list[str]) -> str:
        out = ""
        prev: str | None = None
        unary = False
        for tok in tokens:
            if prev is not None:
                out += self._space(prev, tok, unary)
            unary = tok == "-" and (prev is None or not _ends_operand(prev))
            out += tok
            self._track(tok)
            prev = tok
        return out

    def _in_call_argument(self) -> bool:
        return bool(self.brackets) and self.brackets[-1][0] and not self.brackets[-1][1]

    def _space(self, prev: str, tok: str, unary: bool) -> str:
        if unary or prev in ("(", "[", ".") or tok in (")", "]", ",", ";", ":", "."):
            return ""
        if tok == "=" or prev == "=":
            return "" if self._in_call_argument() else " "
        if tok == "(":
            return "" if _ends_operand(prev) and prev not in (")", "]") and prev[0] != '"' else " "
        if tok == "[":
            return "" if (prev[0].isalpha() or prev[0] == "_") and prev not in _KEYWORDS | _CONSTANTS else " "
        return " "

    def _track(self, tok: str) -> None:
        if tok in ("(", "["):
            self.brackets.append([tok == "(", False])
        elif tok in (")", "]") and self.brackets:
            self.brackets.pop()
        elif tok == ":" and self.brackets:
            self.brackets[-1][1] = True
        elif tok == "," and self.brackets:
            self.brackets[-1][1] = False


def format_source(text: str, filename: str = "<string>") -> str:
    """The formatted text of a .dlm file (raises the parser's CompileError if it does not parse)."""
    parse(text, filename)
    spacer = _Spacer()
    out: list[str] = []
    depth = 0  # of { } blocks
    statement_indent = (0, 0)  # (input indent, output indent) of the line the current statement began on
    for line in _split_lines(text):
        if not line.tokens and line.comment is None:
            if out and out[-1] != "":
                out.append("")
            continue
        first = line.tokens[0] if line.tokens else ""
        continues = bool(spacer.brackets) or first == "|>"
        level = depth - (first == "}")
        if continues:
            offset = max(len(INDENT), line.indent - statement_indent[0])
            indent = statement_indent[1] + offset
        else:
            indent = level * len(INDENT)
            if line.tokens:
                statement_indent = (line.indent, indent)
        code = " " * indent + spacer.join(line.tokens)
        if line.comment is not None:
            if line.tokens:
                code += " " * max(2, line.comment_col - len(code)) + line.comment
            else:
                code = " " * indent + line.comment
        out.append(code.rstrip())
        depth = max(depth + line.tokens.count("{") - line.tokens.count("}"), 0)
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n"
