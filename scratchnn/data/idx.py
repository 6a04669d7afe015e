"""MNIST-format IDX files: read (gzip or plain), write, and load a whole MNIST-style directory.

The IDX format (LeCun's MNIST page) is a 4-byte magic number, the dimensions, then the data::

    magic   0x00 0x00 <dtype code> <ndim>          dtype code 0x08 uint8, 0x09 int8,
    dims    ndim big-endian uint32                    0x0B int16, 0x0C int32, 0x0D float32,
    data    prod(dims) items, big-endian, C order     0x0E float64

:func:`read_idx` checks all of it — the two zero bytes, the dtype code, that the header is
complete, and that the file holds *exactly* ``prod(dims)`` items (a truncated download and a file
with trailing bytes are both errors) — and every error message names the file.
"""
from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = ["IDX_DTYPES", "read_idx", "write_idx", "find_mnist_files", "read_mnist_dir",
           "MnistArrays"]

#: IDX dtype code -> NumPy dtype (big-endian, as stored).
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic (whatever its name)."""
    if not path.is_file():
        raise FileNotFoundError(f"read_idx(): file '{path}' does not exist")
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, gzip.BadGzipFile) as e:   # truncated or corrupt stream
            raise ValueError(f"read_idx(): file '{path}' is a damaged gzip stream "
                             f"(truncated download?): {e}") from None
    return raw


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (plain or gzip-compressed) into a native-endian NumPy array.

    Shapes:  an ``idx3`` image file gives (N, H, W) uint8; an ``idx1`` label file gives (N,).
    Errors:  ``FileNotFoundError`` for a missing file; ``ValueError`` for a damaged gzip stream,
             a wrong magic number (first two bytes not zero), an unknown dtype code, a header
             shorter than its dimensions, or a data size different from prod(dims)·itemsize
             (truncated or trailing bytes). Every message names the file.
    """
    path = Path(path)
    buf = _read_bytes(path)
    where = f"read_idx(): file '{path}'"
    if len(buf) < 4:
        raise ValueError(f"{where} is truncated: {len(buf)} bytes, fewer than the 4-byte magic "
                         f"number")
    zero, code, ndim = struct.unpack(">HBB", buf[:4])
    if zero != 0:
        raise ValueError(f"{where} has a wrong magic number 0x{buf[:4].hex()}: an IDX file "
                         f"starts with two zero bytes (is it an IDX file?)")
    if code not in IDX_DTYPES:
        raise ValueError(f"{where} has an unknown IDX dtype code 0x{code:02x} (magic "
                         f"0x{buf[:4].hex()}); known codes: "
                         f"{', '.join(f'0x{c:02x}' for c in IDX_DTYPES)}")
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise ValueError(f"{where} is truncated: its header declares {ndim} dimensions "
                         f"({header} bytes) but the file has {len(buf)} bytes")
    dims = struct.unpack(f">{ndim}I", buf[4:header])
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    got = len(buf) - header
    if got != expected:
        kind = "truncated" if got < expected else "longer than its header says"
        raise ValueError(f"{where} is {kind}: dimensions {dims} need {expected} data bytes, "
                         f"found {got}")
    data = np.frombuffer(buf, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))            # native order, writable copy


def write_idx(path: str | os.PathLike, array: np.ndarray, *, compress: bool | None = None
              ) -> Path:
    """Write ``array`` as an IDX file (gzip when ``compress``, default: the name ends in .gz).

    The inverse of :func:`read_idx`; the dtype must be one IDX can hold (uint8, int8, int16,
    int32, float32, float64). Returns the path.
    """
    path = Path(path)
    a = np.asarray(array)
    codes = {d.newbyteorder("="): c for c, d in IDX_DTYPES.items()}
    if a.dtype.newbyteorder("=") not in codes:
        raise TypeError(f"write_idx(): parameter 'array' has dtype {a.dtype}, which IDX cannot "
                        f"store (uint8, int8, int16, int32, float32, float64)")
    if a.ndim > 255:
        raise ValueError("write_idx(): parameter 'array' has more than 255 dimensions")
    code = codes[a.dtype.newbyteorder("=")]
    blob = (struct.pack(">HBB", 0, code, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape)
            + np.ascontiguousarray(a, dtype=IDX_DTYPES[code]).tobytes())
    if compress if compress is not None else path.suffix == ".gz":
        blob = gzip.compress(blob, mtime=0)
    path.write_bytes(blob)
    return path


_STEMS = {
    "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def find_mnist_files(directory: str | os.PathLike) -> dict[str, Path]:
    """The four MNIST files in ``directory``: ``{"train_images", "train_labels",
    "test_images", "test_labels"} -> path``.

    Names as on LeCun's page (``train-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, ...),
    also with a dot before ``idx`` (a common re-packaging), each plain or with ``.gz``; the plain
    file wins when both exist. ``FileNotFoundError`` names the directory and what is missing.
    """
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"load_mnist_dir(): directory '{d}' does not exist")
    found, missing = {}, []
    for key, stems in _STEMS.items():
        hits = [d / (s + ext) for ext in ("", ".gz") for s in stems if (d / (s + ext)).is_file()]
        if hits:
            found[key] = hits[0]
        else:
            missing.append(f"{stems[0]}[.gz]")
    if missing:
        raise FileNotFoundError(f"load_mnist_dir(): directory '{d}' lacks {', '.join(missing)} "
                                f"(an MNIST-format directory holds train-/t10k- images and "
                                f"labels IDX files)")
    return found


class MnistArrays(NamedTuple):
    """Raw MNIST-format arrays as stored: images (N, H, W) uint8, labels (N,) int64."""
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def _pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3:
        raise ValueError(f"load_mnist_dir(): file '{images_path}' must hold images (N, H, W), "
                         f"got shape {images.shape}")
    if labels.ndim != 1:
        raise ValueError(f"load_mnist_dir(): file '{labels_path}' must hold labels (N,), got "
                         f"shape {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"load_mnist_dir(): image/label count mismatch: file '{images_path}' "
                         f"has {len(images)} images but file '{labels_path}' has "
                         f"{len(labels)} labels")
    return images, labels.astype(np.int64)


def read_mnist_dir(directory: str | os.PathLike) -> MnistArrays:
    """Read an MNIST-format directory (MNIST, Fashion-MNIST, KMNIST, ...) as raw arrays.

    See :func:`find_mnist_files` for the file names; every file goes through :func:`read_idx`.
    The image and label counts of each split must agree. For normalised (N, 1, H, W) float
    arrays use :func:`scratchnn.data.load_mnist_dir`, which calls this.
    """
    files = find_mnist_files(directory)
    tr = _pair(files["train_images"], files["train_labels"])
    te = _pair(files["test_images"], files["test_labels"])
    if tr[0].shape[1:] != te[0].shape[1:]:
        raise ValueError(f"load_mnist_dir(): image sizes differ: file '{files['train_images']}' "
                         f"has {tr[0].shape[1:]}, file '{files['test_images']}' has "
                         f"{te[0].shape[1:]}")
    return MnistArrays(tr[0], tr[1], te[0], te[1])
