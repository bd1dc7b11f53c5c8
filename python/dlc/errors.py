"""Errors and located diagnostics.

Every problem in a .dlm file becomes a `CompileError` carrying a source location; `format()` renders it the
way compilers do (`file:line:col: error: message`, the source line, a caret), so the CLI can print it without
a traceback and editors can jump to it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Loc:
    """A position in a source file (1-based line and column)."""

    file: str
    line: int
    col: int
    source: str = ""  # the whole text, so the message can quote the line

    def line_text(self) -> str:
        lines = self.source.splitlines()
        return lines[self.line - 1] if 0 < self.line <= len(lines) else ""


class DlcError(Exception):
    """Base class of every error dlc raises on purpose."""


class DlcWarning(UserWarning):
    """A model that compiles but is likely not what was meant (an unused parameter): see dlc/lint.py."""


class CompileError(DlcError):
    """An error in a model: syntax, names, types or shapes, with where it happened."""

    def __init__(self, message: str, loc: Loc | None = None, notes: tuple[str, ...] = ()):
        super().__init__(message)
        self.message = message
        self.loc = loc
        self.notes = notes

    def format(self) -> str:
        if self.loc is None:
            head = f"error: {self.message}"
            return "\n".join([head, *(f"note: {n}" for n in self.notes)])
        loc = self.loc
        text = loc.line_text().replace("\t", " ")
        col = max(loc.col - 1, 0)
        if len(text) > 120:  # show a window around the caret, not a whole minified line
            start = max(0, col - 60)
            text = ("..." if start else "") + text[start:start + 120] + ("..." if start + 120 < len(text) else "")
            col = col - start + (3 if start else 0)
        caret = " " * col + "^"
        parts = [f"{loc.file}:{loc.line}:{loc.col}: error: {self.message}"]
        if text:
            parts += [f"    {text}", f"    {caret}"]
        parts += [f"note: {n}" for n in self.notes]
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.format()


class ShapeError(DlcError):
    """Raised by an op's shape rule; the graph builder turns it into a located CompileError."""


class CheckpointError(DlcError):
    """A checkpoint or artifact that is missing, truncated, corrupt or does not match the model."""


class NonFiniteError(DlcError):
    """A training step whose loss or gradients are NaN or infinite; the update was not applied."""


class ArenaLimitError(DlcError):
    """A plan whose working memory (its arena) exceeds the limit (dlc.set_arena_limit; default: the machine's
    physical memory), refused before anything is allocated."""


class DistributedError(DlcError):
    """A data-parallel job that cannot run as asked: MPI missing, or ranks that disagree about the model, the
    data or the settings. Raised on every rank at once, so no rank is left waiting."""


class UntrainedWarning(DlcWarning):
    """A compiled artifact (or ONNX file) written or loaded with freshly initialized parameters: nothing
    trained or loaded them, so its outputs are not a trained model's."""
