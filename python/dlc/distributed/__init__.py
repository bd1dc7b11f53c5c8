"""Data-parallel training on MPI (mpi4py): `mpirun -n R dlc train ...`, or `dlc.distributed.fit` in a script
started by mpirun.

Every rank holds the whole model and reads its own contiguous shard of every global batch (the recipe's batch
size). The compiled training step runs forward and backward on the shard, then calls back between the last
gradient and the optimizer update (runtime/plan.h); there the gradient region, one contiguous buffer, is
averaged across ranks with one in-place allreduce, so clipping, L1/L2 and the update see the averaged gradients
and every rank applies the identical update. See docs/distributed.md.
"""

from .training import evaluate, fit, launched, save_checkpoint
from .world import World, fingerprint

__all__ = ["World", "evaluate", "fingerprint", "fit", "launched", "save_checkpoint"]
