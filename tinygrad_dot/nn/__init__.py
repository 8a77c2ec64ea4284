"""Neural-network building blocks with PyTorch's names: ``td.nn.Linear``, ``td.nn.functional``, ``td.nn.init``."""
from . import functional, init, utils
from .module import (BCEWithLogitsLoss, CrossEntropyLoss, Dropout, Flatten, Identity, IncompatibleKeys, L1Loss,
                     Linear, LogSoftmax, Module, ModuleDict, ModuleList, MSELoss, NLLLoss, Parameter, ReLU, Sequential,
                     Sigmoid, Softmax, Tanh)

__all__ = ["Module", "Parameter", "Linear", "Sequential", "ModuleList", "ModuleDict", "IncompatibleKeys",
           "ReLU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "Identity", "Flatten", "Dropout",
           "MSELoss", "L1Loss", "CrossEntropyLoss", "NLLLoss", "BCEWithLogitsLoss", "functional", "init", "utils"]
