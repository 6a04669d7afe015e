"""A ``torch.utils.data.DataLoader``-like batch iterator over in-memory arrays."""
from __future__ import annotations

from typing import Iterator

import numpy as np

from .._validate import check_int

__all__ = ["DataLoader"]


class DataLoader:
    """Mini-batches ``(x[idx], y[idx])`` of in-memory arrays, in order or shuffled.

        loader = DataLoader(ds.x_train, ds.y_train, batch_size=32, shuffle=True, seed=0)
        for epoch in range(2):
            for x, y in loader:          # x (B, 1, H, W) float, y (B,) int64
                ...

    ``shuffle``: each pass (each ``iter()``) draws a fresh permutation from one
    ``numpy.random.Generator`` created from ``seed`` (or the ``generator`` given), so epoch 1
    and epoch 2 differ, and the whole sequence of epochs repeats exactly for the same seed —
    torch's behaviour with a seeded ``generator``. ``drop_last`` drops a final short batch.
    The arrays are not copied up front; each batch is a fresh copy (fancy indexing), so nothing
    the caller does to a batch touches the data set.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int = 1, shuffle: bool = False,
                 *, seed: int | None = None, generator: np.random.Generator | None = None,
                 drop_last: bool = False):
        fn = "DataLoader"
        for name, a in (("x", x), ("y", y)):
            if not isinstance(a, np.ndarray) or a.ndim == 0:
                raise TypeError(f"{fn}(): parameter '{name}' must be a numpy.ndarray with a "
                                f"leading sample axis")
        if len(x) != len(y):
            raise ValueError(f"{fn}(): parameters 'x' and 'y' must have the same number of "
                             f"samples, got {len(x)} and {len(y)}")
        self.batch_size = check_int(fn, "batch_size", batch_size, min=1)
        if not isinstance(shuffle, bool) or not isinstance(drop_last, bool):
            raise TypeError(f"{fn}(): parameters 'shuffle' and 'drop_last' must be bools")
        if generator is not None and not isinstance(generator, np.random.Generator):
            raise TypeError(f"{fn}(): parameter 'generator' must be a numpy.random.Generator, "
                            f"got {type(generator).__name__}")
        if generator is not None and seed is not None:
            raise ValueError(f"{fn}(): pass 'seed' or 'generator', not both")
        if seed is not None:
            seed = check_int(fn, "seed", seed, min=0)
        self.x, self.y = x, y
        self.shuffle, self.drop_last = shuffle, drop_last
        self.generator = generator if generator is not None else np.random.default_rng(seed)

    def __len__(self) -> int:
        """Batches per pass."""
        n, b = len(self.x), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def indices(self) -> np.ndarray:
        """The sample order of the next pass (draws from the generator when shuffling)."""
        n = len(self.x)
        return self.generator.permutation(n) if self.shuffle else np.arange(n)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        order = self.indices()
        for k in range(len(self)):
            idx = order[k * self.batch_size:(k + 1) * self.batch_size]
            yield self.x[idx], self.y[idx]
