"""Neural-network building blocks with PyTorch's names: ``td.nn.Linear``, ``td.nn.functional``, ``td.nn.init``."""
from . import functional, init, utils
from .module import Identity, Linear, Module, Parameter, ReLU, Sequential, Sigmoid

__all__ = ["Module", "Parameter", "Linear", "Sequential", "ReLU", "Sigmoid", "Identity",
           "functional", "init", "utils"]
