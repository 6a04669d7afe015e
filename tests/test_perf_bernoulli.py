"""dropout's keep mask from the raw bits (scratchnn.perf.bernoulli): the textbook's mask bit for
bit, and the generator left exactly where the textbook's float32 draw leaves it — for every
state of the buffered 32-bit half, odd and even sizes, any block size and thread count."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import scratchnn
import scratchnn.functional as F
import scratchnn.textbook as T
from scratchnn.perf import bernoulli, threads
from scratchnn.textbook.dropout import dropout_mask


@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("bit_generator", [np.random.PCG64, np.random.PCG64DXSM])
def test_raw_bits_give_the_textbook_mask_and_state(monkeypatch, n_threads, bit_generator):
    monkeypatch.setattr(threads, "MIN_PARALLEL", 1)
    monkeypatch.setattr(bernoulli, "BLOCK", 3)                     # ragged blocks
    before = threads.get_num_threads()
    threads.set_num_threads(n_threads)
    try:
        for drawn_before in (0, 1, 2):                             # buffered half or not
            for n in (0, 1, 2, 7, 1000, 1001):
                for p in (0.5, 0.1, 1 / 3, 1e-9, 0.9999999, 0.99999999):
                    g1, g2 = (np.random.Generator(bit_generator(11)) for _ in range(2))
                    g1.random(drawn_before, dtype=np.float32)
                    g2.random(drawn_before, dtype=np.float32)
                    ref = dropout_mask((n,), p, g1).astype(np.float32) / np.float32(1.0 - p)
                    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
                    noise, y = bernoulli.scaled_keep(g2, x, p,
                                                     np.float32(1.0) / np.float32(1.0 - p))
                    np.testing.assert_array_equal(noise.view(np.int32), ref.view(np.int32))
                    np.testing.assert_array_equal(y, x * ref)
                    np.testing.assert_array_equal(g1.random(3, dtype=np.float32),
                                                  g2.random(3, dtype=np.float32))
                    assert g1.random() == g2.random()
    finally:
        threads.set_num_threads(before)


def test_fast_dropout_is_the_textbook_draw_and_other_generators_fall_back():
    x = np.random.default_rng(0).standard_normal((3, 5000)).astype(np.float32)
    dy = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    for gen in (None, np.random.Generator(np.random.MT19937(5))):
        copy = None if gen is None else np.random.Generator(np.random.MT19937(5))
        scratchnn.manual_seed(7)
        (yf, pf) = scratchnn.vjp(F.dropout, x, 0.3, generator=gen)
        scratchnn.manual_seed(7)
        (yb, pb) = scratchnn.vjp(T.dropout, x, 0.3, generator=copy)
        np.testing.assert_array_equal(yf, yb)
        np.testing.assert_array_equal(pf(dy)[0], pb(dy)[0])
    D = sys.modules["scratchnn.functional.dropout"]           # the module (F.dropout: the op)
    assert D.choose_route(np.random.default_rng(), 0.5, True, x) == "raw bits"
    assert D.choose_route(np.random.Generator(np.random.MT19937()), 0.5, True, x) == "textbook"
    assert D.choose_route(np.random.default_rng(), 1.0, True, x) == "textbook"
    assert D.choose_route(np.random.default_rng(), 0.5, False, x) == "textbook"
