"""What a data-parallel rank adds to a run of a training plan (dlc.distributed builds these; the runtime side
is RunContext in csrc/dispatch.h)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class Shard:
    offset: int  # this shard's first sample in the global batch: dropout draws the global batch's masks
    size: int  # samples in this shard
    weight: float  # size / global batch size: the share the rank's gradients get in the average
    # Sums a float64 array over the ranks in place; given, batch norm uses the global batch's statistics.
    sum_across_ranks: Callable[[np.ndarray], None] | None = None

    def run_arguments(self) -> dict[str, Any]:
        """Keyword arguments of _core.Plan.run."""
        return {"sample_offset": self.offset, "local_batch": self.size, "sum_across_ranks": self.sum_across_ranks,
                "shard_weight": self.weight}
