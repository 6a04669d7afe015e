"""Stateful modules mirroring ``torch.nn``, with explicit ``backward``.

    y = m(x)              # forward; keeps what backward needs
    dx = m.backward(dy)   # returns the input gradient; adds into each parameter's .grad

One file per family (``conv``, ``pooling``, ``recurrent``, ...); this package re-exports the
layers under torch's class names.
"""
from .module import Module, OpModule, Parameter, Sequential
from .activation import *  # noqa: F401,F403
from .linear import *  # noqa: F401,F403
from .container import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .pooling import *  # noqa: F401,F403
from .dropout import *  # noqa: F401,F403
from .recurrent import *  # noqa: F401,F403
from .loss import *  # noqa: F401,F403
from .normalization import *  # noqa: F401,F403
from .sparse import *  # noqa: F401,F403
from .attention import *  # noqa: F401,F403
from .transformer import *  # noqa: F401,F403
from . import utils  # noqa: F401  (clip_grad_norm_, clip_grad_value_)
