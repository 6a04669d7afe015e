"""Offline data: an MNIST-format IDX reader, bundled digits, Fashion-MNIST, a batch iterator.

    from scratchnn.data import load_digits, load_mnist_dir, DataLoader
    ds = load_digits()                                  # (1500, 1, 8, 8) / (297, 1, 8, 8)
    ds = load_mnist_dir("/usr/share/datasets/fashion-mnist")   # any MNIST-format directory
    for x, y in DataLoader(ds.x_train, ds.y_train, batch_size=32, shuffle=True, seed=0):
        ...                                             # x (32, 1, H, W) float32, y (32,) int64

Nothing is downloaded; scikit-learn is needed only by :func:`load_digits` (imported lazily).
"""
from .datasets import (DIGITS_SPLIT, FASHION_MNIST_DIR, FASHION_MNIST_MEAN_STD, MNIST_MEAN_STD,
                       Dataset, load_digits, load_fashion_mnist, load_mnist_dir, normalize)
from .idx import IDX_DTYPES, MnistArrays, find_mnist_files, read_idx, read_mnist_dir, write_idx
from .loader import DataLoader

__all__ = ["read_idx", "write_idx", "find_mnist_files", "read_mnist_dir", "MnistArrays",
           "IDX_DTYPES", "Dataset", "normalize", "load_mnist_dir", "load_fashion_mnist",
           "load_digits", "DataLoader", "FASHION_MNIST_DIR", "MNIST_MEAN_STD",
           "FASHION_MNIST_MEAN_STD", "DIGITS_SPLIT"]
