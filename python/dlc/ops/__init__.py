"""The op registry and its families. Importing this package registers every op."""

from . import (attention, batchnorm, conv, creation, elementwise, embedding, gather, loss, matmul,  # noqa: F401
               nchwc, nn, optim, pool, recurrent, reduce, registry, shape)

__all__ = ["registry"]
