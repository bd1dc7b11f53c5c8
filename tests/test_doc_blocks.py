"""Docs that cannot drift: every .dlm and Python block of README.md and docs/*.md runs (or, when marked
`fragment`, parses), quoted model files match the repository, and every path the docs cite exists.
The convention is described in tests/doc_blocks.py and docs/architecture.md."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

import dlc
from dlc.frontend.parser import parse
from dlc.ir import np_dtype
from doc_blocks import DOC_FILES, ROOT, SHOWN_ONLY, Block, all_blocks, code_blocks

BLOCKS = all_blocks()
DLM = [b for b in BLOCKS if b.lang == "dlm"]
PYTHON_FILES = [path for path in DOC_FILES if any(b.lang == "python" for b in code_blocks(path))]


def test_every_block_says_its_language() -> None:
    unknown = [f"{b.id} ({b.lang or 'no language'})" for b in BLOCKS
               if b.lang not in SHOWN_ONLY | {"dlm", "python"} or set(b.flags) - {"fragment"}]
    assert not unknown, f"fenced blocks need a known info string (see tests/doc_blocks.py): {unknown}"


def run_model(source: str) -> None:
    program = dlc.compile(source=source)
    inputs = {n: np.ones([2 if isinstance(d, str) else d for d in s.shape], np_dtype(s.dtype))
              for n, s in program.inputs.items()}
    for name, value in program(**inputs).items():
        assert np.all(np.isfinite(value)), name


@pytest.fixture
def in_clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch directory that looks like a clone's root (its folders linked in), so examples read models/...
    as a reader in a fresh clone would, and what they write (run.ckpt) lands outside the repository."""
    for entry in ROOT.iterdir():
        if entry.is_dir() and not entry.name.startswith(".") and entry.name != "build":
            (tmp_path / entry.name).symlink_to(entry)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("block", DLM, ids=[b.id for b in DLM])
def test_dlm_block(block: Block, in_clone: Path) -> None:
    quoted = re.match(r"# (models/\S+\.dlm)\n", block.body)
    if quoted:
        text = (ROOT / quoted.group(1)).read_text(encoding="utf-8")
        assert block.body[quoted.end():].strip() == text.strip(), f"{block.id} is a stale copy of {quoted.group(1)}"
    if block.fragment:
        parse(block.body, block.id)
    else:
        run_model(block.body)


@pytest.mark.parametrize("path", PYTHON_FILES, ids=[p.name for p in PYTHON_FILES])
def test_python_blocks(path: Path, in_clone: Path) -> None:
    """A file's python blocks run in order in one namespace, as a reader pasting them would."""
    namespace: dict[str, object] = {"__name__": "__doc_example__"}
    for block in code_blocks(path):
        if block.lang != "python":
            continue
        code = compile(block.body, block.id, "exec")
        if not block.fragment:
            exec(code, namespace)  # noqa: S102 - the docs' own examples


def test_python_fragments_are_valid() -> None:
    for block in BLOCKS:
        if block.lang == "python" and block.fragment:
            ast.parse(block.body, block.id)


# A repository path in prose or comments: `csrc/dispatch.*` or `results/x.{md,json}` are patterns, not paths.
CITED = re.compile(r"(?<![\w/.-])((?:models|docs|tests|benchmarks|examples|editors|python|csrc|grammar|shared)"
                   r"/[\w./-]+)(?![\w./*{<-])")


def test_cited_paths_exist() -> None:
    """Docs, models and benchmarks cite only paths of this repository (not a user's files in examples)."""
    missing = []
    for path in [*DOC_FILES, *(ROOT / "models").glob("*.dlm"), *(ROOT / "benchmarks").glob("*.py")]:
        text = path.read_text(encoding="utf-8")
        for block in code_blocks(path) if path.suffix == ".md" else []:
            if block.lang in SHOWN_ONLY:
                text = text.replace(block.body, "")
        for match in CITED.finditer(text):
            cited = match.group(1).rstrip(".")
            if not (ROOT / cited).exists():
                missing.append(f"{path.name}: {cited}")
    assert not missing, missing


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s#]+)\)|<img src=\"([^\"]+)\"")


def test_links_and_pictures_exist() -> None:
    """Relative links and images of the docs (docs/img/*, other docs) point at files of the repository."""
    missing = []
    for path in DOC_FILES:
        for match in LINK.finditer(path.read_text(encoding="utf-8")):
            target = match.group(1) or match.group(2)
            if "://" not in target and not (path.parent / target).exists():
                missing.append(f"{path.name}: {target}")
    assert not missing, missing
