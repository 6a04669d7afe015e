"""Pure ops mirroring ``torch.nn.functional``: same names, argument order, keywords, defaults.

Each op is an ``<op>_forward`` / ``<op>_backward`` pair in its family module, published under
torch's name with :func:`scratchnn.defop`; differentiate any of them with :func:`scratchnn.vjp`.
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
