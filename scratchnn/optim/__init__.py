"""Optimizers step-for-step equal to ``torch.optim``, and learning-rate schedulers.

    opt = optim.Adadelta(model.parameters(), lr=0.5)
    sched = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    for x, y in batches:
        opt.zero_grad()
        loss = crit(model(x), y)
        model.backward(crit.backward())        # fills each Parameter's .grad
        opt.step()                             # updates each .data in place
    sched.step()

Each optimizer replicates torch's single-tensor (``foreach=False``) implementation operation
by operation, so float64 runs agree with torch to rounding and float32 runs to a few ulps.

The update rules themselves, as plain pure formulas (one step for one parameter, new arrays
out, torch's documented algorithm line by line), are ``scratchnn.textbook.optim``:
``sgd_step``, ``adam_step``/``adamw_step``, ``adagrad_step``, ``adadelta_step``,
``rmsprop_step``. The classes here are their fast editions, in place (with the helpers of
``scratchnn.perf.inplace``); the tests prove the two equal step by step.
"""
from . import lr_scheduler
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Adadelta", "RMSprop", "Adagrad",
           "lr_scheduler"]
