"""Imports every op family module, so their converters are registered in `registry.CONVERTERS`."""

from __future__ import annotations

from . import (ops_elementwise, ops_loss, ops_nn, ops_pool, ops_quant, ops_recurrent, ops_reduce,  # noqa: F401
               ops_scatter, ops_shape)
from .registry import CONVERTERS

__all__ = ["CONVERTERS"]
