"""The textbook: the plain NumPy edition of every op, forward and hand-written backward.

Read this package first. Every op here has torch's name and signature, is published with
:func:`scratchnn.defop` (so ``scratchnn.vjp(scratchnn.textbook.max_pool2d, x, 2)`` works and
``help()`` shows the formula, the shapes, what is saved and the backward), and fits on a
screen: no threads, caches, workspaces, routes or bit tricks. It imports only the contract
layer (``scratchnn.autodiff``, ``scratchnn._validate``, ``scratchnn.window``,
``scratchnn.random``), never ``scratchnn.functional`` or ``scratchnn.perf``.

``scratchnn.functional`` holds the fast editions. Where an op is already plain (``linear``,
``softsign``, ``softmin``, ...) it lives here once and ``scratchnn.functional`` names the same
function; everywhere else the tests prove the two editions equal (values and every gradient,
with each route of the fast engine forced) and both equal to torch.

Families, in reading order:

====================  =====================================================================
``activation``        sigmoid, tanh, the relu family, gelu, softplus, softmax, log_softmax
``linear``            y = x Wᵀ + b
``conv``              convolution and transposed convolution, N-d: by-pixel loops, then
                      im2col / col2im
``pooling``           max/min/avg/lp/adaptive pooling and max_unpool
``dropout``           dropout and its feature / alpha variants
``recurrent``         RNN, LSTM and GRU cells; a layer is the cell loop, BPTT its reverse
``loss``              nll, cross entropy, mse, l1, huber, bce, kl_div
``normalization``     batch/layer/group/instance/rms norm on one core; embedding
``attention``         scaled dot-product attention, multi-head attention
``tensor``            flatten, reshape, transpose, permute, cat, stack, add, mul, indexing:
                      the shape and arithmetic ops a custom forward uses
``optim``             the optimizers' update rules as plain formulas
====================  =====================================================================
"""
from .activation import *  # noqa: F401,F403
from .linear import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .pooling import *  # noqa: F401,F403
from .dropout import *  # noqa: F401,F403
from .recurrent import *  # noqa: F401,F403
from .loss import *  # noqa: F401,F403
from .normalization import *  # noqa: F401,F403
from .embedding import *  # noqa: F401,F403
from .tensor import *  # noqa: F401,F403
from .attention import *  # noqa: F401,F403
from . import optim  # noqa: F401
