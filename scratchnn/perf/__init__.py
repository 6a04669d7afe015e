"""The performance machinery the fast engines (and the in-place optimizers) share — and nothing
else imports.

``scratchnn.functional``'s engines are the fast editions of the ops; what makes them fast but
is not the op's mathematics lives here, off the contract floor:

* :mod:`~scratchnn.perf.threads` — ``set_num_threads`` and the one worker pool; ``chunked``
  (an elementwise formula over one contiguous chunk per thread) and ``ranges`` (index ranges,
  one per thread);
* :mod:`~scratchnn.perf.phases` — faster ways to read windows: offset slices clipped to the
  unpadded input, and the stride-phase layout in which every kernel offset is one contiguous run;
* :mod:`~scratchnn.perf.bitwise` — ``mask_select``: ``np.where(mask, dy, 0)`` on the bits;
* :mod:`~scratchnn.perf.workspace` — the convolution engine's per-thread column buffers
  (``workspace``) and its batch chunks, on the calling thread or the worker threads
  (``run_chunks``);
* :mod:`~scratchnn.perf.inplace` — the optimizers' in-place primitives (``add_``, ``mul_``,
  ``addcmul_``, ``addcdiv_``, ``lerp_`` in torch's order of operations) and ``blocked``: an
  elementwise update run one cache-sized block at a time (Adadelta);
* :mod:`~scratchnn.perf.polyphase` — max/min pooling's ``Polyphase`` copy of the padded input
  (every kernel offset one flat run, the layout cached per geometry) and ``running_extreme``
  (the running max/min and its winner kept by integer arithmetic);
* :mod:`~scratchnn.perf.separable` — average pooling's window sums one dimension at a time
  (``box_sum``, its adjoint ``box_spread``), flat runs along the last dimension, plane blocks;
* :mod:`~scratchnn.perf.blocks` — the activations' blocked passes: σ, tanh's and σ's backward
  block by block (``sigmoid_into``, ``sigmoid_grad_into``, ``tanh_grad_into``), the softmax
  family's row blocks (``as_rows``, ``row_blocks``) and ``row_loops`` (per-row broadcasts
  looped row by row, not through NumPy's buffer);
* :mod:`~scratchnn.perf.elementwise` — ``blocked``: an elementwise kernel of many ufunc passes run
  one cache-sized block at a time over the threads (the activations' fused forwards, relu), and
  ``select_bits``, ``np.where`` on the bits;
* :mod:`~scratchnn.perf.sequence` — the recurrent engine's time-loop helpers: ``sigmoid_``
  (σ in place, the textbook's ½ tanh(a/2) + ½) and ``transposed_copy`` (Wᵀ contiguous, copied
  in cache-sized tiles, for the per-step GEMM);
* :mod:`~scratchnn.perf.recycle` — ``empty``/``zeros`` that hand a buffer out again once
  nothing refers to it (a caching allocator: no page faults on the next call's arrays);
* :mod:`~scratchnn.perf.bernoulli` — ``scaled_keep``: dropout's keep mask from a PCG64's raw
  bits, split over threads with jumped copies (the textbook's mask bit for bit);

Import rules (``tests/test_layout.py`` checks them): the contract layer (``autodiff``,
``_validate``, ``window``, ``gradcheck``, ``random``) imports nothing above it; the textbook
(``scratchnn.textbook``) imports only the contract layer; ``perf`` imports only the contract
layer; the engines (``scratchnn.functional``) may import all three.
"""
