"""Offline data sets as normalised (N, 1, H, W) arrays: any MNIST-format directory, Debian's
Fashion-MNIST, and scikit-learn's bundled 8×8 digits. Nothing is ever downloaded.

Normalisation follows the chapter (torchvision's ``ToTensor()`` then ``Normalize(mean, std)``):
pixels are scaled to [0, 1] and standardised, ``x = (p / p_max − mean) / std``, with ``mean`` and
``std`` those of the *training* pixels, rounded to 4 decimals as torchvision publishes them:

=====================  =========  ======  ======  ========================================
data set               p_max      mean    std     note
=====================  =========  ======  ======  ========================================
MNIST                  255        0.1307  0.3081  exactly the chapter's / torchvision's
Fashion-MNIST          255        0.2860  0.3530  the widely used Fashion-MNIST constants
sklearn digits         16         0.3057  0.3761  of the fixed 1500-image training split
=====================  =========  ======  ======  ========================================

(all three computed by the same rule; pass ``mean``/``std`` to override). The arithmetic is done
in float64 and the result cast once to ``dtype``, so float32 and float64 runs see the same data up
to one rounding.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .._validate import check_float_dtype, check_int
from .idx import read_mnist_dir

__all__ = ["Dataset", "normalize", "load_mnist_dir", "load_fashion_mnist", "load_digits",
           "FASHION_MNIST_DIR", "MNIST_MEAN_STD", "FASHION_MNIST_MEAN_STD", "DIGITS_SPLIT"]

#: Where Debian's ``dataset-fashion-mnist`` package installs the four gzip'd IDX files.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
MNIST_MEAN_STD = (0.1307, 0.3081)
FASHION_MNIST_MEAN_STD = (0.2860, 0.3530)
#: The digits split: (seed of the permutation, number of training images); the rest is test.
DIGITS_SPLIT = (0, 1500)


class Dataset(NamedTuple):
    """A train/test pair ready for a ConvNet.

    x_train, x_test: (N, 1, H, W) float (normalised); y_train, y_test: (N,) int64 class indices;
    mean/std: the normalisation used (in [0, 1] pixel units); name: where it came from.
    """
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    mean: float
    std: float
    name: str

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(initial=-1), self.y_test.max(initial=-1))) + 1


def _dtype(fn: str, dtype: Any) -> np.dtype:
    return check_float_dtype(fn, "dtype", dtype, default=np.float32)


def normalize(images: np.ndarray, scale: float, mean: float, std: float,
              dtype=np.float32) -> np.ndarray:
    """(images / scale − mean) / std, computed in float64, as (N, 1, H, W) in ``dtype``.

    ``images`` is (N, H, W) (a channel axis is added) or already (N, 1, H, W).
    """
    dtype = _dtype("normalize", dtype)
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[1] != 1):
        raise ValueError(f"normalize(): parameter 'images' must be (N, H, W) or (N, 1, H, W), "
                         f"got shape {images.shape}")
    if not std > 0:
        raise ValueError(f"normalize(): parameter 'std' must be > 0, got {std}")
    x = (images.astype(np.float64) / scale - mean) / std
    return x.reshape(len(x), 1, *x.shape[-2:]).astype(dtype)


def _train_stats(train: np.ndarray, scale: float) -> tuple[float, float]:
    """Mean and std of the training pixels in [0, 1] units, rounded like torchvision's."""
    x = train.astype(np.float64) / scale
    return round(float(x.mean()), 4), round(float(x.std()), 4)


def _finish(name, xtr, ytr, xte, yte, scale, mean, std, dtype, do_norm) -> Dataset:
    if mean is None or std is None:
        m, s = _train_stats(xtr, scale)
        mean = m if mean is None else mean
        std = s if std is None else std
    if not do_norm:
        mean, std = 0.0, 1.0
    return Dataset(normalize(xtr, scale, mean, std, dtype), ytr,
                   normalize(xte, scale, mean, std, dtype), yte, float(mean), float(std), name)


def load_mnist_dir(directory: str | os.PathLike, *, dtype=np.float32, normalize: bool = True,
                   mean: float | None = None, std: float | None = None) -> Dataset:
    """Any MNIST-format directory as a normalised :class:`Dataset`.

    Files: ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
    ``t10k-labels-idx1-ubyte``, each plain or ``.gz`` (see :func:`read_mnist_dir`; errors name
    the file). ``mean``/``std`` default to the training pixels' own (rounded to 4 decimals),
    which for MNIST is exactly the chapter's 0.1307/0.3081; ``normalize=False`` only scales to
    [0, 1].
    """
    dtype = _dtype("load_mnist_dir", dtype)
    raw = read_mnist_dir(directory)
    return _finish(Path(directory).name or str(directory), raw.train_images, raw.train_labels,
                   raw.test_images, raw.test_labels, 255.0, mean, std, dtype, normalize)


def load_fashion_mnist(directory: str | os.PathLike = FASHION_MNIST_DIR, *, dtype=np.float32,
                       normalize: bool = True) -> Dataset:
    """Fashion-MNIST (60 000 train / 10 000 test, 28×28, 10 classes) from Debian's
    ``dataset-fashion-mnist`` package (``apt install dataset-fashion-mnist``), normalised with
    mean 0.2860, std 0.3530."""
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"load_fashion_mnist(): directory '{d}' does not exist; install "
                                f"Debian's 'dataset-fashion-mnist' package or pass the directory "
                                f"holding the IDX files")
    ds = load_mnist_dir(d, dtype=dtype, normalize=normalize, mean=FASHION_MNIST_MEAN_STD[0],
                        std=FASHION_MNIST_MEAN_STD[1])
    return ds._replace(name="fashion-mnist")


def load_digits(*, dtype=np.float32, normalize: bool = True, seed: int = DIGITS_SPLIT[0],
                n_train: int = DIGITS_SPLIT[1]) -> Dataset:
    """scikit-learn's bundled handwritten digits (1797 images, 8×8, pixel values 0..16) — the
    embedded default: no download, a few milliseconds to load.

    Size: kept at **8×8**. Padding or upsampling to MNIST's 28×28 would add no information and
    cost ~12× the compute; the chapter's ConvNet works unchanged at 8×8 (3×3 convs -> 6×6 -> 4×4,
    2×2 max-pool -> 2×2, so ``Linear(32·2·2 = 128, 64)``), which keeps CI parity runs fast.
    Split: a fixed permutation from ``numpy.random.default_rng(seed)`` (seed 0): the first
    ``n_train`` (1500) images train, the other 297 test — the same on every machine.
    Normalisation: pixels / 16, then the training split's mean and std (0.3057, 0.3761).
    scikit-learn is needed only here and is imported lazily (``pip install scikit-learn``).
    """
    dtype = _dtype("load_digits", dtype)
    seed = check_int("load_digits", "seed", seed, min=0)
    n_train = check_int("load_digits", "n_train", n_train, min=1)
    try:
        from sklearn.datasets import load_digits as _sk_digits
    except ImportError as e:
        raise ImportError("load_digits() needs scikit-learn for its bundled digits (no download): "
                          "pip install scikit-learn; or use load_mnist_dir(DIR) with "
                          "MNIST-format files") from e
    bunch = _sk_digits()
    images = bunch.images.astype(np.uint8)                    # (1797, 8, 8), values 0..16
    labels = bunch.target.astype(np.int64)
    if n_train >= len(images):
        raise ValueError(f"load_digits(): parameter 'n_train' must be < {len(images)} (the rest "
                         f"is the test split), got {n_train}")
    perm = np.random.default_rng(seed).permutation(len(images))
    tr, te = perm[:n_train], perm[n_train:]
    return _finish("digits", images[tr], labels[tr], images[te], labels[te], 16.0, None, None,
                   dtype, normalize)
