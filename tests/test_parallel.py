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


def test_run_team_runs_on_the_workers_and_then_again(threads):
    """The caller and k − 1 worker threads each run ``take`` once per call, call after call
    (the workers wait on their lock between calls), and after a worker's error."""
    import threading
    for k in (2, 3):
        parallel.set_num_threads(k)
        for _ in range(3):
            seen, lock = [], threading.Lock()

            def take():
                with lock:
                    seen.append(threading.get_ident())
            parallel.run_team(take, k)
            assert len(seen) == len(set(seen)) == k
            assert threading.get_ident() in seen

    def fail():
        if threading.current_thread() is not threading.main_thread():
            raise KeyError("worker")
    with pytest.raises(KeyError, match="worker"):
        parallel.run_team(fail, 2)
    calls = []
    parallel.run_team(lambda: calls.append(1), 2)                # the team still works
    assert len(calls) == 2


def test_nested_and_concurrent_ranges_run_on_the_caller(threads):
    """A ``ranges`` call inside a step (the workers are busy) and calls from other threads at
    the same time each cover their own indices once: a busy team runs the call on the
    calling thread, never waits for itself."""
    import threading
    parallel.set_num_threads(2)
    outer = np.zeros((8, 50), np.int64)

    def step(a, b):
        for i in range(a, b):
            def inner(c, d, i=i):
                outer[i, c:d] += 1
            parallel.ranges(inner, 50, parallel.MIN_PARALLEL)
    nested = threading.Thread(target=parallel.ranges, args=(step, 8, parallel.MIN_PARALLEL))
    nested.start()
    nested.join(timeout=60)                                         # a deadlock fails here
    assert not nested.is_alive()
    np.testing.assert_array_equal(outer, 1)

    counts = np.zeros((4, 1000), np.int64)

    def user(t):
        for _ in range(20):
            parallel.ranges(lambda a, b: counts[t, a:b].__iadd__(1), 1000,
                            parallel.MIN_PARALLEL)
    others = [threading.Thread(target=user, args=(t,)) for t in range(4)]
    for t in others:
        t.start()
    for t in others:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in others)
    np.testing.assert_array_equal(counts, 20)


def test_a_forked_child_starts_its_own_workers(threads):
    """After ``os.fork`` the parent's workers do not exist in the child; its first parallel
    call starts new ones instead of waiting for the lost threads forever."""
    import os
    if not hasattr(os, "fork"):
        pytest.skip("no fork")
    parallel.set_num_threads(2)
    parallel.ranges(lambda a, b: None, 8, parallel.MIN_PARALLEL)   # the parent's workers
    pid = os.fork()
    if pid == 0:                                                     # the child
        code = 1
        try:
            seen = np.zeros(64, np.int64)
            parallel.ranges(lambda a, b: seen[a:b].__iadd__(1), 64, parallel.MIN_PARALLEL)
            code = 0 if (seen == 1).all() else 1
        finally:
            os._exit(code)
    import time
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("the forked child's parallel call hung")


def _team_calls(monkeypatch):
    calls = []
    real = parallel.run_team

    def spy(take, k):
        calls.append(k)
        real(take, k)
    monkeypatch.setattr(parallel, "run_team", spy)
    return calls


def test_ranges_least_sets_the_work_from_which_threads_run(threads, monkeypatch):
    parallel.set_num_threads(2)
    calls = _team_calls(monkeypatch)
    parallel.ranges(lambda a, b: None, 8, 1000, least=1001)
    assert calls == []
    parallel.ranges(lambda a, b: None, 8, 1001, least=1001)
    parallel.ranges(lambda a, b: None, 8, parallel.MIN_PARALLEL)
    assert calls == [2, 2]


@pytest.mark.parametrize("op", ["layer_norm", "rms_norm", "batch_norm", "log_softmax",
                                "softmax"])
def test_row_statistics_ops_take_threads_from_min_parallel_rows(threads, monkeypatch, op):
    """The softmax family and the norms run on one thread below ``MIN_PARALLEL_ROWS``
    elements (their blocks' short ufunc calls hand the GIL over: slower on two threads),
    forward and backward, and on the workers from there on."""
    from scratchnn import vjp
    parallel.set_num_threads(2)
    rng = np.random.default_rng(0)
    calls = _team_calls(monkeypatch)
    for size, threaded in ((parallel.MIN_PARALLEL_ROWS // 2, False),
                           (parallel.MIN_PARALLEL_ROWS, True)):
        x = rng.standard_normal((size // 256, 4, 64)).astype(np.float32)
        if op == "batch_norm":
            args = (x, None, None, rng.standard_normal(4).astype(np.float32), None, True)
        elif op in ("layer_norm", "rms_norm"):
            args = (x, (64,), rng.standard_normal(64).astype(np.float32))
        else:
            args = (x, -1)
        calls.clear()
        y, pullback = vjp(getattr(F, op), *args)
        pullback(rng.standard_normal(y.shape).astype(np.float32))
        assert (len(calls) >= 2) if threaded else (calls == []), (size, calls)


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


def test_block_bytes_follows_the_core_cache(monkeypatch):
    """Row blocks stay at ``least`` where a core's L2 holds three of them (or the L2 is
    unknown), else cut the array into ``BLOCKS`` blocks within [least, most]; a ``most``
    below ``least`` (a test's tiny blocks) always wins."""
    from scratchnn.perf import blocks
    least, most = 1 << 19, 1 << 21
    monkeypatch.setattr(blocks, "BLOCKS", 4)
    for l2 in (None, 2 << 20, 3 * least):
        monkeypatch.setattr(blocks, "L2_BYTES", l2)
        assert blocks.block_bytes(100 << 20, least, most) == least
        assert blocks.block_bytes(100 << 20, least, 700) == 700
    monkeypatch.setattr(blocks, "L2_BYTES", 1 << 20)
    assert blocks.block_bytes(100 << 20, least, most) == most          # capped
    assert blocks.block_bytes(6 << 20, least, most) == (6 << 20) // 4  # total / BLOCKS
    assert blocks.block_bytes(1 << 20, least, most) == least           # at least `least`
    assert blocks.block_bytes(6 << 20, least, 700) == 700


def test_block_sized_sums_are_the_same_bits_for_any_thread_count(monkeypatch, threads):
    """With blocks sized from the array (``block_bytes``, a small L2), a layer norm's dγ, dβ and
    a batch norm's statistics and parameter gradients, summed block by block, come out
    bit-identical on 1, 2 and 3 threads: the block count depends on the machine, not on the
    thread setting."""
    import scratchnn
    import scratchnn.functional.normalization as FN
    from scratchnn.perf import blocks
    monkeypatch.setattr(blocks, "L2_BYTES", 1)                 # under 3 blocks of 1 byte
    monkeypatch.setattr(FN, "_ROW_BLOCK_MIN", 1)
    monkeypatch.setattr(FN, "_MIN_BLOCKED", 0)
    monkeypatch.setattr(parallel, "MIN_PARALLEL", 1)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((96, 40)).astype(np.float32)
    x4 = rng.standard_normal((12, 40, 3, 3)).astype(np.float32)
    w, b = rng.standard_normal(40).astype(np.float32), rng.standard_normal(40).astype(np.float32)
    dy, dy4 = (rng.standard_normal(a.shape).astype(np.float32) for a in (x, x4))
    assert len(list(blocks.row_blocks(0, 96, 40, 4, blocks.block_bytes(x.nbytes, 1, 1 << 21)))) \
        == blocks.BLOCKS                                      # several blocks, not one
    runs = []
    for n in (1, 2, 3):
        parallel.set_num_threads(n)
        _, pb = scratchnn.vjp(F.layer_norm, x, (40,), w, b)
        rm, rv = np.zeros(40, np.float32), np.ones(40, np.float32)
        y4, pb4 = scratchnn.vjp(F.batch_norm, x4, rm, rv, w, b, True)
        runs.append((*pb(dy)[2:], y4, rm, rv, *pb4(dy4)[3:]))
    for r in runs[1:]:
        for a, b_ in zip(r, runs[0]):
            np.testing.assert_array_equal(a, b_)
