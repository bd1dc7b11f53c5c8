"""The op registry and its families. Importing this package registers every op."""

from . import (attention, batchnorm, conv, elementwise, embedding, loss, matmul, nn, optim, pool,  # noqa: F401
               recurrent, reduce, registry, shape)

__all__ = ["registry"]
