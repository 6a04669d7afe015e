"""scratchnn.data: IDX reader/writer, MNIST-format directories, digits, the batch iterator."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from scratchnn.data import (DataLoader, find_mnist_files, load_digits, load_fashion_mnist,
                            load_mnist_dir, normalize, read_idx, read_mnist_dir, write_idx)
from scratchnn.data.datasets import FASHION_MNIST_DIR


# -- IDX files --------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_idx_round_trip(tmp_path, dtype, name):
    a = (np.arange(2 * 3 * 5) * 7 % 113 - (0 if dtype == "u1" else 40)).astype(dtype)
    a = a.reshape(2, 3, 5)
    p = write_idx(tmp_path / name, a)
    assert (p.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    b = read_idx(p)
    assert b.dtype == a.dtype.newbyteorder("=") and b.shape == a.shape
    np.testing.assert_array_equal(b, a)
    assert b.flags.writeable


def test_idx_bytes_are_the_published_layout(tmp_path):
    """An MNIST label file by hand: magic 0x00000801, count, bytes."""
    p = tmp_path / "labels"
    p.write_bytes(struct.pack(">II", 0x801, 4) + bytes([3, 1, 4, 1]))
    np.testing.assert_array_equal(read_idx(p), [3, 1, 4, 1])
    q = tmp_path / "img"                                    # idx3: 0x00000803, N, H, W
    q.write_bytes(struct.pack(">IIII", 0x803, 1, 2, 3) + bytes(range(6)))
    np.testing.assert_array_equal(read_idx(q), np.arange(6).reshape(1, 2, 3))
    # big-endian int32 payload
    r = tmp_path / "ints"
    r.write_bytes(struct.pack(">II", 0x0C01, 2) + struct.pack(">ii", -2, 70000))
    np.testing.assert_array_equal(read_idx(r), [-2, 70000])


def _write_raw(path, blob, gz):
    path.write_bytes(gzip.compress(blob) if gz else blob)
    return path


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("blob, match", [
    (b"", "truncated.*fewer than the 4-byte magic"),
    (b"\x00\x00", "truncated.*fewer than the 4-byte magic"),
    (struct.pack(">II", 0x00000803, 2), "truncated.*declares 3 dimensions"),
    (struct.pack(">IIII", 0x803, 2, 2, 2) + bytes(7), r"truncated.*need 8 data bytes, found 7"),
    (struct.pack(">II", 0x801, 3) + bytes(4), "longer than its header says"),
    (struct.pack(">II", 0x12340801, 1) + bytes(1), "wrong magic number 0x12340801"),
    (b"P5\n28 28\n255\n" + bytes(10), "wrong magic number"),
    (struct.pack(">II", 0x0A01, 1) + bytes(1), "unknown IDX dtype code 0x0a"),
])
def test_idx_errors_name_the_file(tmp_path, gz, blob, match):
    p = _write_raw(tmp_path / ("bad.gz" if gz else "bad"), blob, gz)
    with pytest.raises(ValueError, match=match) as e:
        read_idx(p)
    assert str(p) in str(e.value)


def test_idx_missing_and_damaged_gzip(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope-idx1-ubyte"):
        read_idx(tmp_path / "nope-idx1-ubyte")
    blob = gzip.compress(struct.pack(">II", 0x801, 1000) + bytes(1000))
    p = tmp_path / "cut.gz"
    p.write_bytes(blob[: len(blob) // 2])                    # an interrupted download
    with pytest.raises(ValueError, match=r"cut\.gz.*damaged gzip") as e:
        read_idx(p)
    assert str(p) in str(e.value)


def test_write_idx_rejects_unstorable_dtype(tmp_path):
    with pytest.raises(TypeError, match="write_idx.*'array'.*int64"):
        write_idx(tmp_path / "x", np.zeros(3, np.int64))


# -- MNIST-format directories -----------------------------------------------------------------
def _mnist_dir(root, n_train=6, n_test=4, hw=(5, 4), gz=True, dotted=False, labels_train=None):
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ext = ".gz" if gz else ""
    sep = "." if dotted else "-"
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        img = rng.integers(0, 256, (n, *hw), dtype=np.uint8)
        lab = rng.integers(0, 10, n, dtype=np.uint8)
        if split == "train" and labels_train is not None:
            lab = np.asarray(labels_train, np.uint8)
        write_idx(root / f"{split}-images{sep}idx3-ubyte{ext}", img)
        write_idx(root / f"{split}-labels{sep}idx1-ubyte{ext}", lab)
        arrays[split] = (img, lab)
    return arrays


@pytest.mark.parametrize("gz, dotted", [(True, False), (False, False), (False, True)])
def test_mnist_dir_round_trip(tmp_path, gz, dotted):
    arrays = _mnist_dir(tmp_path / "m", gz=gz, dotted=dotted)
    raw = read_mnist_dir(tmp_path / "m")
    np.testing.assert_array_equal(raw.train_images, arrays["train"][0])
    np.testing.assert_array_equal(raw.test_labels, arrays["t10k"][1])
    assert raw.train_labels.dtype == np.int64
    ds = load_mnist_dir(tmp_path / "m", dtype=np.float64)
    assert ds.x_train.shape == (6, 1, 5, 4) and ds.x_test.shape == (4, 1, 5, 4)
    assert ds.x_train.dtype == np.float64 and ds.y_train.dtype == np.int64
    p = arrays["train"][0].astype(np.float64) / 255
    assert ds.mean == round(p.mean(), 4) and ds.std == round(p.std(), 4)
    np.testing.assert_allclose(ds.x_train[:, 0], (p - ds.mean) / ds.std, rtol=1e-15)
    fixed = load_mnist_dir(tmp_path / "m", mean=0.1307, std=0.3081)
    assert fixed.x_test.dtype == np.float32
    np.testing.assert_allclose(fixed.x_test[:, 0],
                               (arrays["t10k"][0] / 255 - 0.1307) / 0.3081, rtol=1e-6)
    plain = load_mnist_dir(tmp_path / "m", normalize=False)
    assert plain.x_train.min() >= 0 and plain.x_train.max() <= 1


def test_mnist_dir_prefers_plain_over_gz(tmp_path):
    _mnist_dir(tmp_path, gz=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.arange(4, dtype=np.uint8))
    files = find_mnist_files(tmp_path)
    assert files["test_labels"].name == "t10k-labels-idx1-ubyte"
    assert files["train_labels"].name == "train-labels-idx1-ubyte.gz"


def test_mnist_dir_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="directory .*absent.* does not exist"):
        load_mnist_dir(tmp_path / "absent")
    _mnist_dir(tmp_path / "a")
    (tmp_path / "a" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"lacks t10k-labels-idx1-ubyte\[\.gz\]"):
        load_mnist_dir(tmp_path / "a")
    _mnist_dir(tmp_path / "b", labels_train=[1, 2, 3, 4, 5])     # 6 images, 5 labels
    with pytest.raises(ValueError, match="count mismatch.*train-images-idx3-ubyte.gz.*6 images"
                                         ".*train-labels-idx1-ubyte.gz.*5 labels"):
        load_mnist_dir(tmp_path / "b")
    _mnist_dir(tmp_path / "c")                                    # a truncated member file
    f = tmp_path / "c" / "train-images-idx3-ubyte.gz"
    f.write_bytes(gzip.compress(gzip.decompress(f.read_bytes())[:-3]))
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz' is truncated"):
        load_mnist_dir(tmp_path / "c")
    _mnist_dir(tmp_path / "d")                                    # labels file holding images
    write_idx(tmp_path / "d" / "train-labels-idx1-ubyte.gz", np.zeros((6, 2), np.uint8))
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte.gz' must hold labels"):
        load_mnist_dir(tmp_path / "d")


@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_from_debian_package():
    raw = read_mnist_dir(FASHION_MNIST_DIR)
    assert raw.train_images.shape == (60000, 28, 28) and raw.test_images.shape == (10000, 28, 28)
    assert np.bincount(raw.train_labels).tolist() == [6000] * 10
    ds = load_fashion_mnist()
    assert (ds.mean, ds.std, ds.name) == (0.2860, 0.3530, "fashion-mnist")
    assert abs(float(ds.x_train.mean())) < 1e-3 and abs(float(ds.x_train.std()) - 1) < 1e-3


# -- digits -----------------------------------------------------------------------------------
def test_digits_shapes_dtypes_and_split():
    a = load_digits()
    assert a.x_train.shape == (1500, 1, 8, 8) and a.x_test.shape == (297, 1, 8, 8)
    assert a.x_train.dtype == np.float32 and a.y_train.dtype == np.int64
    assert set(np.unique(a.y_test)) == set(range(10)) and a.num_classes == 10
    assert (a.mean, a.std) == (0.3057, 0.3761)
    assert abs(float(a.x_train.mean())) < 1e-3 and abs(float(a.x_train.std()) - 1) < 1e-3
    b = load_digits(dtype=np.float64)                  # same split, same data in float64
    np.testing.assert_array_equal(a.y_train, b.y_train)
    np.testing.assert_array_equal(a.x_test, b.x_test.astype(np.float32))
    c = load_digits(seed=1)
    assert not np.array_equal(a.y_train, c.y_train)
    # the split is a partition of sklearn's 1797 images
    from sklearn.datasets import load_digits as sk
    imgs = sk().images
    both = np.concatenate([a.x_train, a.x_test])[:, 0] * a.std + a.mean
    np.testing.assert_allclose(np.sort((both * 16).round().reshape(1797, -1), axis=0),
                               np.sort(imgs.reshape(1797, -1), axis=0), atol=1e-4)


def test_digits_without_sklearn(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match="load_digits.*scikit-learn"):
        load_digits()


def test_loader_bad_arguments():
    with pytest.raises(TypeError, match="load_digits.*'dtype'"):
        load_digits(dtype=np.int32)
    with pytest.raises(ValueError, match="load_digits.*'n_train'"):
        load_digits(n_train=1797)
    with pytest.raises(ValueError, match="normalize.*'images'"):
        normalize(np.zeros((2, 3, 4, 4)), 1.0, 0.0, 1.0)


# -- DataLoader -------------------------------------------------------------------------------
def _xy(n=10):
    return np.arange(n * 4, dtype=np.float32).reshape(n, 1, 2, 2), np.arange(n, dtype=np.int64)


@pytest.mark.parametrize("n, b, drop, sizes", [
    (10, 3, False, [3, 3, 3, 1]), (10, 3, True, [3, 3, 3]), (9, 3, True, [3, 3, 3]),
    (2, 5, False, [2]), (2, 5, True, []), (0, 4, False, []),
])
def test_loader_batch_sizes(n, b, drop, sizes):
    x, y = _xy(n)
    dl = DataLoader(x, y, batch_size=b, drop_last=drop)
    got = list(dl)
    assert [len(yb) for _, yb in got] == sizes and len(dl) == len(sizes)
    if not drop and n:
        np.testing.assert_array_equal(np.concatenate([yb for _, yb in got]), y)   # in order
    for xb, yb in got:
        assert xb.dtype == np.float32 and yb.dtype == np.int64
        np.testing.assert_array_equal(xb[:, 0, 0, 0], yb * 4)                     # pairs kept


def test_loader_shuffle_is_seeded_and_changes_per_epoch():
    x, y = _xy(50)
    run = lambda seed: [np.concatenate([yb for _, yb in dl]) for dl in [DataLoader(
        x, y, batch_size=7, shuffle=True, seed=seed)] for _ in range(3)]
    a, b, c = run(3), run(3), run(4)
    for e in range(3):
        np.testing.assert_array_equal(a[e], b[e])                       # reproducible
        assert sorted(a[e].tolist()) == list(range(50))                 # a permutation
    assert not np.array_equal(a[0], a[1])                               # new order per epoch
    assert not np.array_equal(a[0], c[0])                               # seed matters
    g = np.random.default_rng(3)
    dl = DataLoader(x, y, batch_size=50, shuffle=True, generator=g)
    np.testing.assert_array_equal(next(iter(dl))[1], a[0])              # same as seed=3


def test_loader_batches_are_copies():
    x, y = _xy(4)
    for xb, _ in DataLoader(x, y, batch_size=2):
        xb[...] = -1
    np.testing.assert_array_equal(x, _xy(4)[0])


def test_loader_errors():
    x, y = _xy(4)
    with pytest.raises(ValueError, match="'x' and 'y'.*4 and 3"):
        DataLoader(x, y[:3])
    with pytest.raises(ValueError, match="DataLoader.*'batch_size' must be >= 1"):
        DataLoader(x, y, batch_size=0)
    with pytest.raises(TypeError, match="'generator'"):
        DataLoader(x, y, generator=3)
    with pytest.raises(ValueError, match="not both"):
        DataLoader(x, y, seed=1, generator=np.random.default_rng())
    with pytest.raises(TypeError, match="'x'"):
        DataLoader([1, 2], y)
