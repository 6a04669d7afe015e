"""scratchnn.perf.threads (the thread setting, chunked evaluation) and perf.blocks.row_loops."""
from __future__ import annotations

import numpy as np
import pytest

import scratchnn.functional as F
from scratchnn.perf import threads as parallel


@pytest.fixture
def threads():
    before = parallel.get_num_threads()
    yield
    parallel.set_num_threads(before)


def test_chunked_is_bit_identical_to_one_call(threads):
    x = np.random.default_rng(0).standard_normal(parallel.MIN_PARALLEL * 7 + 7).astype(np.float32)
    parallel.set_num_threads(1)
    one = F.sigmoid(x)
    for n in (2, 3):
        parallel.set_num_threads(n)
        np.testing.assert_array_equal(F.sigmoid(x), one)
        np.testing.assert_array_equal(F.sigmoid(x.reshape(7, -1)[:, ::2]),
                                      one.reshape(7, -1)[:, ::2])     # non-contiguous path


def test_chunked_writes_every_chunk(threads):
    parallel.set_num_threads(3)
    x = np.arange(parallel.MIN_PARALLEL * 2, dtype=np.float64).reshape(4, -1)
    out = np.full_like(x, np.nan)
    parallel.chunked(np.negative, x, out=out)
    np.testing.assert_array_equal(out, -x)


def test_set_num_threads_validates(threads):
    with pytest.raises(ValueError, match=r"set_num_threads\(\): parameter 'n'"):
        parallel.set_num_threads(0)
    with pytest.raises(TypeError, match="'n'"):
        parallel.set_num_threads(2.0)
    parallel.set_num_threads(2)
    assert parallel.get_num_threads() == 2


@pytest.mark.parametrize("n_threads, n", [(2, 1), (2, 5), (2, 8), (3, 1000), (2, 2 ** 14 + 3)])
def test_ranges_cover_every_index_once_in_pieces(threads, n_threads, n):
    """ranges() hands out balanced pieces (a few per thread, fewer when n is small) that cover
    [0, n) exactly once, on the pool's threads and the calling one."""
    parallel.set_num_threads(n_threads)
    seen = np.zeros(n, np.int64)
    calls = []

    def step(a, b):
        seen[a:b] += 1
        calls.append((a, b))

    parallel.ranges(step, n, parallel.MIN_PARALLEL)
    np.testing.assert_array_equal(seen, 1)
    assert len(calls) == min(n, n_threads * parallel.PIECES_PER_THREAD)
    sizes = [b - a for a, b in calls]
    assert max(sizes) - min(sizes) <= 1


def test_ranges_reraise_a_workers_error(threads):
    parallel.set_num_threads(2)

    def step(a, b):
        if a > 0:
            raise RuntimeError(f"piece {a}")

    with pytest.raises(RuntimeError, match="piece"):
        parallel.ranges(step, 64, parallel.MIN_PARALLEL)


def test_row_loops_sets_the_buffer_to_a_row_and_restores_it():
    """row_loops(n): NumPy's ufunc buffer at most one row (a multiple of 16) inside, for the
    calling thread only; restored on exit, also after an error; nothing changed for short
    rows (under ROW_LOOPS_MIN)."""
    import threading

    from scratchnn.perf import blocks
    before = np.getbufsize()
    with blocks.row_loops(1000):
        assert np.getbufsize() == 992
        seen = []
        t = threading.Thread(target=lambda: seen.append(np.getbufsize()))
        t.start()
        t.join()
        assert seen == [8192]                                 # another thread: NumPy's default
    assert np.getbufsize() == before
    with blocks.row_loops(20000):
        assert np.getbufsize() == 8192
    with blocks.row_loops(blocks.ROW_LOOPS_MIN - 1):
        assert np.getbufsize() == before
    with pytest.raises(KeyError):
        with blocks.row_loops(300):
            assert np.getbufsize() == 288
            raise KeyError("inside")
    assert np.getbufsize() == before


@pytest.mark.parametrize("n", [300, 1000])
def test_row_loops_gives_the_bits_of_buffered_ufuncs(n):
    """A per-row broadcast computed row by row equals NumPy's buffered loop bit for bit."""
    from scratchnn.perf import blocks
    rng = np.random.default_rng(n)
    x = rng.standard_normal((37, n)).astype(np.float32)
    m = rng.standard_normal((37, 1)).astype(np.float32)
    want = [x - m, x * m, x / m]
    with blocks.row_loops(n):
        got = [x - m, x * m, x / m]
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
