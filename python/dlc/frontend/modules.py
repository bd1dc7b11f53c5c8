"""Source modules: a parsed .dlm file, its blocks, and the files it imports (resolved relative to it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lark import Token, Tree

from ..errors import CompileError, Loc
from .parser import decode_source, parse

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


def load_text(text: str, filename: str, base_dir: Path, stack: tuple[str, ...] = ()) -> Module:
    tree = parse(text, filename)
    module = Module(filename, text, tree)
    for stmt in tree.children:
        if not isinstance(stmt, Tree):
            continue
        if stmt.data == "block_def":
            _add_block(module, stmt)
        elif stmt.data in ("import_stmt", "from_import"):
            _import(module, stmt, base_dir, stack + (filename,))
    return module


def load_path(path: str | Path, stack: tuple[str, ...] = ()) -> Module:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise CompileError(f"cannot read {path}: {e.strerror or e}") from None
    return load_text(decode_source(data, str(path)), str(path), p.resolve().parent, stack)


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


def _import(module: Module, stmt: Tree, base_dir: Path, stack: tuple[str, ...]) -> None:
    path_tok = stmt.children[0]
    rel = str(path_tok)[1:-1]
    target = (base_dir / rel).resolve()
    if str(target) in {str(Path(s).resolve()) for s in stack if not s.startswith("<")}:
        raise CompileError(f"import cycle: {rel} imports itself", module.loc(path_tok))
    if len(stack) > MAX_IMPORT_DEPTH:
        raise CompileError("imports nested too deeply", module.loc(path_tok))
    if not target.is_file():
        raise CompileError(f"cannot import '{rel}': no such file {target}", module.loc(path_tok))
    imported = load_path(target, stack)
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
