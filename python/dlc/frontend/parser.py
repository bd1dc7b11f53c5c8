"""Parses .dlm text with Lark into a parse tree, turning every failure into a located CompileError.

Input is checked before Lark sees it: undecodable bytes, NUL bytes and absurd sizes get a clear message
instead of a confusing parse error, and nesting depth is bounded so that evaluation can never hit Python's
recursion limit.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Iterator

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from ..errors import CompileError, Loc
from . import brackets

MAX_SOURCE_BYTES = 4 * 1024 * 1024
MAX_NESTING = 64
MAX_TREE_DEPTH = 400


def grammar_path() -> Path:
    """The grammar ships inside the package; a source checkout keeps it at the repository root."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "grammar" / "dlm.lark", here.parent.parent / "grammar" / "dlm.lark"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("dlm.lark not found: the dlc installation is incomplete")


class _BracketNewlines:
    """Postlexer: newlines inside () or [] do not end a statement, so calls and lists can wrap. (It must not
    look ahead: the contextual lexer lexes each token in the parser state of the moment.)"""

    always_accept = ("_NL",)

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        depth = 0
        for tok in stream:
            if tok.type in ("LPAR", "LSQB"):
                depth += 1
            elif tok.type in ("RPAR", "RSQB"):
                depth = max(depth - 1, 0)
            if tok.type == "_NL" and depth > 0:
                continue
            yield tok


@functools.lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(grammar_path().read_text(encoding="utf-8"), parser="lalr", propagate_positions=True,
                postlex=_BracketNewlines(), maybe_placeholders=True)


_TOKEN_NAMES = {
    "NAME": "a name", "INT": "an integer", "NUMBER": "a number", "STRING": "a string", "_NL": "a newline",
    "LPAR": "'('", "RPAR": "')'", "LSQB": "'['", "RSQB": "']'", "LBRACE": "'{'", "RBRACE": "'}'",
    "COMMA": "','", "COLON": "':'", "EQUAL": "'='", "SEMICOLON": "';'", "DOT": "'.'", "$END": "end of file",
    "COMP_OP": "a comparison", "ADD_OP": "'+' or '-'", "MUL_OP": "'*', '/' or '@'", "POW_OP": "'**'",
    "MINUS": "'-'", "_PIPE": "'|>'",
}


def _describe_expected(expected: set[str]) -> str:
    names = sorted({_TOKEN_NAMES.get(e, repr(e.lower()) if e.isupper() else e) for e in expected})
    if len(names) > 8:
        names = names[:8] + ["..."]
    return ", ".join(names)


def check_text_size(text: str, filename: str, at: Loc | None = None) -> None:
    """Model text obeys the same limit as a model file. (Characters are counted first: at least one byte each,
    so a huge string is refused without encoding it.)"""
    size = len(text) if len(text) > MAX_SOURCE_BYTES else len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_SOURCE_BYTES:
        raise CompileError(f"{filename} is {size} bytes; model text is limited to {MAX_SOURCE_BYTES}", at)


def normalize_newlines(text: str) -> str:
    """CRLF (Windows) and lone CR (classic Mac) line endings both become LF, so every file reads as lines."""
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def decode_source(data: bytes, filename: str, at: Loc | None = None) -> str:
    """Bytes of a model file to text; `at` locates problems that have no place inside the file itself."""
    if len(data) > MAX_SOURCE_BYTES:
        raise CompileError(f"{filename} is {len(data)}+ bytes; model files are limited to {MAX_SOURCE_BYTES}", at)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise CompileError("the file is not UTF-8 text (is it a binary file?)", Loc(filename, line, col)) from None
    if "\x00" in text:
        i = text.index("\x00")
        line = text.count("\n", 0, i) + 1
        raise CompileError("the file contains a NUL byte (is it a binary file?)",
                           Loc(filename, line, i - (text.rfind("\n", 0, i) + 1) + 1, text))
    return text


# What one pass over the text lets through to Lark, whose time and memory grow with the token count (a 4 MiB
# file of `a+a+...` is a million tokens and takes many seconds). Each bound is far above any written model.
MAX_TOKENS = 40_000
MAX_STATEMENTS = 10_000
MAX_STATEMENT_TOKENS = 10_000
# A run of line ends and blank lines is one match (Lark's _NL takes it whole); comments are matched alone.
_TOKEN = re.compile(r'\n[\n \t\f\r]*|#[^\n]*|"[^"\n]*"|[A-Za-z_0-9.]+|\|>|\*\*|[=!<>]=|\S')


def _check_limits(text: str, filename: str) -> None:
    """Bounds bracket nesting, statement count, tokens per statement and tokens in all, reading the text once
    and stopping at the first token past a bound, so an oversized file is refused in milliseconds."""
    depth = paren = 0  # all brackets; only () and [], inside which a newline does not end a statement
    tokens = statements = in_statement = 0
    fresh = True  # the next token starts a statement (unless it is a |> continuing the previous one)
    line, line_start = 1, 0

    def fail(message: str, pos: int) -> CompileError:
        return CompileError(message, Loc(filename, line, pos - line_start + 1, text))

    for m in _TOKEN.finditer(text):
        tok = m.group()
        first = tok[0]
        # Separators and comments count too: Lark's lexer and parser handle each one, so a file of `;;;...` or
        # of comment lines is bounded like any other.
        tokens += 1
        if tokens > MAX_TOKENS:
            raise fail(f"the model has more than {MAX_TOKENS:,} tokens; split it into files and import them",
                       m.start())
        if first == "#":
            continue
        if first == "\n":
            line, line_start = line + tok.count("\n"), m.start() + tok.rindex("\n") + 1
            fresh = fresh or paren == 0
            continue
        if first == ";" and paren == 0:
            fresh = True
            continue
        if fresh and tok != "|>":
            statements, in_statement = statements + 1, 0
            if statements > MAX_STATEMENTS:
                raise fail(f"the model has more than {MAX_STATEMENTS:,} statements; use blocks and repeat",
                           m.start())
        fresh = False
        in_statement += 1
        if in_statement > MAX_STATEMENT_TOKENS:
            raise fail(f"statement longer than {MAX_STATEMENT_TOKENS:,} tokens; split it into statements",
                       m.start())
        if first in "([{":
            depth += 1
            paren += first != "{"
            fresh = first == "{"  # a block body's first statement follows
            if depth > MAX_NESTING:
                raise fail(f"brackets nested more than {MAX_NESTING} deep", m.start())
        elif first in ")]}":
            depth = max(depth - 1, 0)
            if first == "}":
                fresh = True
            else:
                paren = max(paren - 1, 0)


def parse(text: str, filename: str = "<string>") -> Tree:
    """Parses source text; raises CompileError with file:line:col on any failure."""
    if not text.strip():
        raise CompileError(f"{filename} is empty: a model needs at least an input and an output",
                           Loc(filename, 1, 1, text))
    _check_limits(text, filename)
    try:
        tree = _parser().parse(text + "\n")
    except UnexpectedCharacters as e:
        ch = text[e.pos_in_stream] if 0 <= e.pos_in_stream < len(text) else "?"
        raise CompileError(f"unexpected character {ch!r}", Loc(filename, e.line, e.column, text)) from None
    except UnexpectedEOF as e:
        lines = text.splitlines() or [""]
        _blame_brackets(text, filename, len(lines), len(lines[-1]) + 1, None)
        raise CompileError(f"unexpected end of file, expected {_describe_expected(set(e.expected))}",
                           Loc(filename, len(lines), len(lines[-1]) + 1, text)) from None
    except UnexpectedToken as e:
        tok = e.token
        what = "end of file" if tok.type == "$END" else (
            "end of line" if tok.type == "_NL" else repr(str(tok)))
        line = getattr(tok, "line", None) or e.line
        col = getattr(tok, "column", None) or e.column
        if tok.type == "$END":
            lines = text.splitlines() or [""]
            line, col = len(lines), len(lines[-1]) + 1
        _blame_brackets(text, filename, line, col, None if tok.type == "$END" else what)
        raise CompileError(f"unexpected {what}, expected {_describe_expected(set(e.expected))}",
                           Loc(filename, line, col, text)) from None
    except UnexpectedInput as e:
        raise CompileError("syntax error", Loc(filename, e.line, e.column, text)) from None
    _check_depth(tree, filename, text)
    return tree


def _blame_brackets(text: str, filename: str, line: int, col: int, token: str | None) -> None:
    """Reports a parse error caused by an unclosed bracket at the bracket (see brackets.py)."""
    found = brackets.diagnose(text, line, col, token)
    if found is not None:
        message, at_line, at_col = found
        raise CompileError(message, Loc(filename, at_line, at_col, text))


def _check_depth(tree: Tree, filename: str, text: str) -> None:
    """Iterative depth check: long operator chains (a |> f |> f ... or -----x) nest deeply too."""
    stack: list[tuple[Tree, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_TREE_DEPTH:
            meta = node.meta
            raise CompileError(f"expression nested more than {MAX_TREE_DEPTH} deep; split it into statements",
                               Loc(filename, getattr(meta, "line", 1), getattr(meta, "column", 1), text))
        for child in node.children:
            if isinstance(child, Tree):
                stack.append((child, depth + 1))
