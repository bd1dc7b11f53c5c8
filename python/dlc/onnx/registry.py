"""The table of ONNX op converters: op type -> function(importer, node). Each op family module registers its
converters with `@converts(...)`; `converters.py` imports every family."""

from __future__ import annotations

from typing import Any, Callable

Converter = Callable[[Any, Any], None]
CONVERTERS: dict[str, Converter] = {}


def converts(*op_types: str) -> Callable[[Converter], Converter]:
    def register(fn: Converter) -> Converter:
        for op in op_types:
            if op in CONVERTERS:
                raise ValueError(f"ONNX op {op} has two converters")
            CONVERTERS[op] = fn
        return fn
    return register
