"""The options every pass reads, in a module of their own so that passes and the pipeline that orders them
(passes/__init__.py) import it without importing each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..ir import Graph
from ..precision import F32, PrecisionPolicy

Pass = Callable[[Graph, "PassContext"], Graph]


@dataclass(frozen=True)
class PassContext:
    training: bool = False  # dropout active; batch norm uses batch statistics
    fuse: bool = True
    optimize: bool = True  # False: only the passes a plan needs to be correct (REQUIRED), for comparisons
    disabled: frozenset[str] = field(default_factory=frozenset)
    dump: Callable[[str, Graph], None] | None = None  # called after every pass, for IR dumps
    precision: PrecisionPolicy = F32  # inference only: training graphs always run in f32
    # Channels per block of the blocked convolution layout (passes/layout.py): 16 on AVX-512, 8 on AVX2, 0 keeps
    # every tensor NCHW (the portable build, training plans). The caller asks the kernels (_core.nchwc_block_size).
    nchwc_block: int = 0
