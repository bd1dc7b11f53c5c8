"""Fenced code blocks of the Markdown docs, with the info-string convention tests/test_doc_blocks.py enforces.

The first word of the info string is the language; the words after it are flags:

    ```dlm              a complete model: it compiles and runs on arrays of ones
    ```dlm fragment     part of a model (a few statements, a train block): it must parse
    ```python           runs, in order with the file's other python blocks, from the repository root
    ```python fragment  part of a program (names defined elsewhere): it must be valid Python
    ```text / console / sh / ebnf / json   shown, not run

A `dlm` block whose first line is `# models/NAME.dlm` quotes that file and must equal it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHOWN_ONLY = {"text", "console", "sh", "ebnf", "json"}


@dataclass(frozen=True)
class Block:
    file: Path
    line: int  # of the opening fence, 1-based
    lang: str
    flags: tuple[str, ...]
    body: str

    @property
    def id(self) -> str:
        return f"{self.file.name}:{self.line}"

    @property
    def fragment(self) -> bool:
        return "fragment" in self.flags


def code_blocks(path: Path) -> list[Block]:
    """Every fenced block of a Markdown file, in order."""
    blocks: list[Block] = []
    opened: tuple[int, str, tuple[str, ...]] | None = None
    body: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.startswith("```"):
            if opened is not None:
                body.append(line)
            continue
        if opened is None:
            words = line[3:].split()
            opened, body = (number, words[0] if words else "", tuple(words[1:])), []
        else:
            blocks.append(Block(path, opened[0], opened[1], opened[2], "\n".join(body) + "\n"))
            opened = None
    return blocks


def all_blocks() -> list[Block]:
    return [b for path in DOC_FILES for b in code_blocks(path)]
