"""Values for test inputs — the machinery is :mod:`scratchnn.testing.values` (NumPy draws the
numbers in one of four regimes: normal, away, distinct, ties) and
:mod:`scratchnn.testing.strategies` (hypothesis draws the structure and a seed); this module
names them for the family spec files."""
from scratchnn.testing.strategies import batch_shapes, elementwise_shapes, seeds
from scratchnn.testing.values import REGIMES, _make, make, upstream

__all__ = ["REGIMES", "make", "upstream", "seeds", "batch_shapes", "elementwise_shapes", "_make"]
