"""The op registry and its families. Importing this package registers every op."""

from . import (attention, batchnorm, conv, creation, elementwise, embedding, loss, matmul, nn,  # noqa: F401
               optim, pool, recurrent, reduce, registry, shape)

__all__ = ["registry"]
