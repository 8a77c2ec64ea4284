"""Optimizers with torch.optim's names, defaults and update rules (``td.optim``)."""
from . import lr_scheduler
from .lbfgs import LBFGS
from .optimizer import Optimizer
from .optimizers import SGD, Adagrad, Adam, AdamW, RMSprop

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "LBFGS", "lr_scheduler"]
