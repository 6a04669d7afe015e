"""The performance machinery the fast engines share — and nothing else imports.

``scratchnn.functional``'s engines are the fast editions of the ops; what makes them fast but
is not the op's mathematics lives here, off the contract floor:

* :mod:`~scratchnn.perf.threads` — ``set_num_threads`` and the one worker pool; ``chunked``
  (an elementwise formula over one contiguous chunk per thread) and ``ranges`` (index ranges,
  one per thread);
* :mod:`~scratchnn.perf.phases` — faster ways to read windows: offset slices clipped to the
  unpadded input, and the stride-phase layout in which every kernel offset is one contiguous run;
* :mod:`~scratchnn.perf.bitwise` — ``mask_select``: ``np.where(mask, dy, 0)`` on the bits;

Import rules (``tests/test_layout.py`` checks them): the contract layer (``autodiff``,
``_validate``, ``window``, ``gradcheck``, ``random``) imports nothing above it; the textbook
(``scratchnn.textbook``) imports only the contract layer; ``perf`` imports only the contract
layer; the engines (``scratchnn.functional``) may import all three.
"""
