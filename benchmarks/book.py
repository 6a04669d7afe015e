"""The chapter's ConvNet as the book writes it: a Module subclass with a forward, no backward.

The class below is the book's code with only its imports changed (``torch.nn`` → ``scratchnn.nn``,
``torch.nn.functional`` → ``scratchnn.functional``, ``torch.flatten`` → ``scratchnn.flatten``).
It defines ``forward`` alone; scratchnn records the ops that forward runs and replays their
hand-written backwards in reverse (:mod:`scratchnn.nn.tracing`, docs/modules.md), so training
it needs one more line than torch's ``loss.backward()``::

    model = ConvNet()
    logp = model(x)
    loss = criterion(logp, y)
    model.backward(criterion.backward())      # fills every parameter's .grad

Its state_dict has the book's keys (``cn1.weight``, ``cn1.bias``, ``cn2.*``, ``fc1.*``,
``fc2.*``), so a checkpoint saved from the book's torch model loads as it is.
``python -m benchmarks.train --model book --compare-torch`` trains this class against
:class:`TorchConvNet` step for step.

One change for other image sizes: ``flat_features`` (default 4608 = 12 × 12 × 32, the book's
number for 28×28 images) is an argument, so the same class runs on the 8×8 digits (128).
"""
from __future__ import annotations

import scratchnn as snn
import scratchnn.functional as F
import scratchnn.nn as nn

try:                         # the torch twin is needed only to compare
    import torch
except ImportError:          # pragma: no cover
    torch = None

__all__ = ["ConvNet", "TorchConvNet"]


class ConvNet(nn.Module):
    def __init__(self, flat_features=4608):
        super(ConvNet, self).__init__()
        self.cn1 = nn.Conv2d(1, 16, 3, 1)
        self.cn2 = nn.Conv2d(16, 32, 3, 1)
        self.dp1 = nn.Dropout2d(0.10)
        self.dp2 = nn.Dropout2d(0.25)
        self.fc1 = nn.Linear(flat_features, 64)     # 4608 is basically 12 X 12 X 32
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = self.cn1(x)
        x = F.relu(x)
        x = self.cn2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dp1(x)
        x = snn.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.dp2(x)
        x = self.fc2(x)
        op = F.log_softmax(x, dim=1)
        return op


if torch is not None:
    class TorchConvNet(torch.nn.Module):
        """The book's ConvNet in torch, same attributes and keys. ``dropout`` builds the two
        dropout layers (torch's ``Dropout2d``; the trainer passes a masked twin that takes the
        step's keep-masks from outside)."""

        def __init__(self, flat_features=4608, dropout=None):
            super().__init__()
            dropout = dropout or torch.nn.Dropout2d
            self.cn1 = torch.nn.Conv2d(1, 16, 3, 1)
            self.cn2 = torch.nn.Conv2d(16, 32, 3, 1)
            self.dp1 = dropout(0.10)
            self.dp2 = dropout(0.25)
            self.fc1 = torch.nn.Linear(flat_features, 64)
            self.fc2 = torch.nn.Linear(64, 10)

        def forward(self, x):
            x = torch.nn.functional.relu(self.cn1(x))
            x = torch.nn.functional.relu(self.cn2(x))
            x = self.dp1(torch.nn.functional.max_pool2d(x, 2))
            x = self.dp2(torch.nn.functional.relu(self.fc1(torch.flatten(x, 1))))
            return torch.nn.functional.log_softmax(self.fc2(x), dim=1)
