"""Source modules: a parsed .dlm file, its blocks, and the files it imports (resolved relative to it)."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from lark import Token, Tree

from ..errors import CompileError, Loc
from .parser import MAX_SOURCE_BYTES, check_text_size, decode_source, normalize_newlines, parse

MAX_IMPORT_DEPTH = 16


@dataclass
class BlockDef:
    name: str
    params: list[tuple[str, str | None, Tree | None]]  # (name, type annotation, default expression)
    body: Tree
    module: "Module"
    loc: Loc


@dataclass
class Module:
    filename: str
    text: str
    tree: Tree
    blocks: dict[str, BlockDef] = field(default_factory=dict)
    namespaces: dict[str, "Module"] = field(default_factory=dict)  # import "x.dlm" as ns

    def loc(self, item: Tree | Token) -> Loc:
        if isinstance(item, Token):
            return Loc(self.filename, item.line or 1, item.column or 1, self.text)
        meta = item.meta
        return Loc(self.filename, getattr(meta, "line", 1), getattr(meta, "column", 1), self.text)


def load_text(text: str, filename: str, base_dir: Path, stack: tuple[str, ...] = (),
              files: Mapping[str, str] | None = None) -> Module:
    """Parses `text` and its imports. With `files` (resolved path -> text, as `imported_files` returns), imports
    are read from that mapping only, never from the file system: how an artifact rebuilds its model."""
    text = normalize_newlines(text)
    tree = parse(text, filename)
    module = Module(filename, text, tree)
    for stmt in tree.children:
        if not isinstance(stmt, Tree):
            continue
        if stmt.data == "block_def":
            _add_block(module, stmt)
        elif stmt.data in ("import_stmt", "from_import"):
            _import(module, stmt, base_dir, stack + (filename,), files)
    return module


def imported_files(module: Module) -> dict[str, str]:
    """Every file `module` imports, directly or not, by the resolved path its import names."""
    found: dict[str, str] = {}
    todo = [*module.namespaces.values(), *(b.module for b in module.blocks.values() if b.module is not module)]
    while todo:
        m = todo.pop()
        if m.filename not in found:
            found[m.filename] = m.text
            todo += [*m.namespaces.values(), *(b.module for b in m.blocks.values() if b.module is not m)]
    return found


def load_source(text: str) -> Module:
    """Model text given directly (`dlc.compile(source=...)`); its imports resolve from the working directory."""
    check_text_size(text, "<string>")
    return load_text(text, "<string>", Path.cwd())


def load_path(path: str | os.PathLike[str], stack: tuple[str, ...] = (), at: Loc | None = None) -> Module:
    """Reads and parses a model file. `at` is the import statement that named it: problems reading the file
    (missing, too big, a name too long) are reported there, since that is the line to fix."""
    p = Path(path)
    name = str(path)
    if "\n" in name:
        raise CompileError(f"cannot read {name[:60]!r}...: a model path cannot contain a newline; pass model "
                           "text as source=", at)
    try:
        st = p.stat()
        if not stat.S_ISREG(st.st_mode):
            raise CompileError(f"cannot read {name}: not a regular file", at)
        if st.st_size > MAX_SOURCE_BYTES:  # checked before reading, so a huge file costs nothing
            raise CompileError(f"{name} is {st.st_size} bytes; model files are limited to {MAX_SOURCE_BYTES}", at)
        with open(p, "rb") as f:
            data = f.read(MAX_SOURCE_BYTES + 1)  # bounded even if the file grows after the stat
    except OSError as e:
        raise CompileError(f"cannot read {_short(name)}: {e.strerror or e}", at) from None
    return load_text(decode_source(data, name, at), name, p.resolve().parent, stack)


def _short(name: str) -> str:
    return name if len(name) <= 200 else name[:100] + "..." + name[-60:]


def _add_block(module: Module, stmt: Tree) -> None:
    name_tok = stmt.children[0]
    params: list[tuple[str, str | None, Tree | None]] = []
    for child in stmt.children[1:-1]:
        if child is None:
            continue
        pname, ptype, default = child.children
        if any(p[0] == str(pname) for p in params):
            raise CompileError(f"block {name_tok} has two parameters named '{pname}'", module.loc(pname))
        params.append((str(pname), str(ptype) if ptype is not None else None, default))
    if str(name_tok) in module.blocks:
        raise CompileError(f"block '{name_tok}' is defined twice", module.loc(name_tok))
    module.blocks[str(name_tok)] = BlockDef(str(name_tok), params, stmt.children[-1], module, module.loc(name_tok))


def _import(module: Module, stmt: Tree, base_dir: Path, stack: tuple[str, ...],
            files: Mapping[str, str] | None) -> None:
    path_tok = stmt.children[0]
    at = module.loc(path_tok)
    rel = str(path_tok)[1:-1]
    if len(stack) > MAX_IMPORT_DEPTH:
        raise CompileError("imports nested too deeply", at)
    try:
        target = (base_dir / rel).resolve()
        found = files is not None or target.exists()
    except OSError as e:  # a name too long for the file system, a loop of symlinks
        raise CompileError(f"cannot import '{_short(rel)}': {e.strerror or e}", at) from None
    if str(target) in {str(Path(s).resolve()) for s in stack if not s.startswith("<")}:
        raise CompileError(f"import cycle: {rel} imports itself", at)
    if files is not None:
        if str(target) not in files:
            raise CompileError(f"cannot import '{_short(rel)}': not among the stored files", at)
        imported = load_text(files[str(target)], str(target), target.parent, stack, files)
    elif not found:
        raise CompileError(f"cannot import '{_short(rel)}': no such file {_short(str(target))}", at)
    else:
        imported = load_path(target, stack, at)
    if stmt.data == "import_stmt":
        alias = stmt.children[1]
        ns = str(alias) if alias is not None else target.stem
        module.namespaces[ns] = imported
        return
    for name_tok in stmt.children[1:]:
        name = str(name_tok)
        if name not in imported.blocks:
            known = ", ".join(sorted(imported.blocks)) or "none"
            raise CompileError(f"'{rel}' has no block '{name}' (it defines: {known})", module.loc(name_tok))
        if name in module.blocks:
            raise CompileError(f"block '{name}' is already defined", module.loc(name_tok))
        module.blocks[name] = imported.blocks[name]
