"""scratchnn: deep learning written out by hand.

Every op has a NumPy forward and a hand-written backward, proved equal to PyTorch by the tests
in ``tests/`` (see ``reference/``). The library needs only NumPy.

    import scratchnn as snn
    import scratchnn.functional as F

    out, pullback = snn.vjp(F.linear, x, w, b)
    dx, dw, db = pullback(dout)
"""
from . import data, functional, nn, optim, textbook
from .autodiff import defop, is_op, vjp
from .gradcheck import GradcheckError, gradcheck
from .perf.threads import get_num_threads, set_num_threads
from .random import default_generator, manual_seed
from .textbook.tensor import *  # noqa: F401,F403  (scratchnn.flatten, cat, ... as torch.*)

__version__ = "0.1.0"
__all__ = ["textbook", "functional", "nn", "optim", "data", "vjp", "defop", "is_op", "gradcheck", "GradcheckError",
           "manual_seed", "default_generator", "set_num_threads", "get_num_threads",
           "__version__"]
