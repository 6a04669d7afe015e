"""Benchmarks against torch: python -m benchmarks (speed, memory) and python -m benchmarks.train
(the chapter's ConvNet, step for step against torch).

NumPy asks the kernel for transparent huge pages on every large array (``madvise``). Where the
kernel's THP ``defrag`` setting is ``madvise`` (this project's 2-core machine), a page fault in
such an array may stall on memory compaction, and the copy-heavy ops (convolution, pooling) then
swung by 30 % from one process to the next (measured: the same conv2d forward+backward at 4.9,
6.5 and 5.1 ms in three runs; 4.8–5.2 ms with huge pages off). So both benchmark commands turn
NumPy's huge-page advice off — unless ``NUMPY_MADVISE_HUGEPAGE`` is already set (NumPy reads it
at import; this package sets it first when run with ``python -m``). The run's JSON records the
setting (``numpy_madvise_hugepage``).
"""
import os

os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
