"""The op registry and its families. Importing this package registers every op."""

from . import elementwise, loss, matmul, nn, optim, reduce, registry, shape  # noqa: F401

__all__ = ["registry"]
