"""Optimizers (优化器) as ``torch.optim.Optimizer`` subclasses, pure update rules, and schedules.

* ``SGD`` (momentum, Nesterov, L2), ``RMSprop`` (momentum, centered), ``Adam`` (L2 added to the
  gradient) and ``AdamW`` (decoupled weight decay): in-place multi-tensor updates that match
  ``torch.optim`` step for step;
* ``companion.optim.functional``: the same rules (and Adagrad, Adadelta) as pure functions on a
  state dict, the chapter's from-scratch reference;
* ``companion.optim.schedules``: linear warm-up + cosine decay (``WarmupCosine``);
* ``state_nbytes``: the memory an optimizer's state takes.
"""

from companion.optim import functional
from companion.optim.adam import Adam, AdamW
from companion.optim.memory import state_nbytes
from companion.optim.rmsprop import RMSprop
from companion.optim.schedules import WarmupCosine
from companion.optim.sgd import SGD

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "RMSprop",
    "WarmupCosine",
    "functional",
    "state_nbytes",
]
