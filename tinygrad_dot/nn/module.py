"""Modules: containers of parameters with PyTorch's API (``td.nn.Module``, ``Linear``, ``Sequential``)."""
from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

from .. import random
from ..backends import get_backend
from ..tensor import Tensor, _check_dtype
from . import functional as F
from . import init
from .utils import zero_grads


class Parameter(Tensor):
    """A tensor that a Module registers as a learnable parameter (requires_grad by default)."""

    def __init__(self, data, requires_grad: bool = True, dtype=None, device=None):
        super().__init__(data, dtype=dtype, device=device, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class: assign Parameters and sub-Modules as attributes and they are
    found by ``parameters()``, ``state_dict()``, ``to()`` and ``zero_grad()``."""

    training = True

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        params = self.__dict__.get("_parameters")
        if params is None:
            raise AttributeError(f"call super().__init__() in {type(self).__name__}.__init__ before assigning "
                                 f"attributes such as {name!r}")
        # Parameters and sub-modules are kept in their registries and, for plain-speed
        # attribute access on the hot path, in the instance dict too.
        if isinstance(value, Parameter):
            self._modules.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None)
            self._modules[name] = value
        elif name in params or name in self._modules:
            if value is not None:
                kind = "parameter" if name in params else "sub-module"
                raise TypeError(f"cannot assign {type(value).__name__} to {kind} {name!r}: use nn.Parameter(...), "
                                "a Module, or None")
            (params if name in params else self._modules)[name] = None
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------ traversal
    def named_modules(self, prefix: str = ""):
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            yield name, module
            children = [(f"{name}.{child}" if name else child, m) for child, m in module._modules.items()
                        if m is not None]
            stack.extend(reversed(children))

    def modules(self):
        return (m for _, m in self.named_modules())

    def children(self):
        return iter(self._modules.values())

    def named_parameters(self, prefix: str = "", recurse: bool = True):
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, param in module._parameters.items():
                if param is None or id(param) in seen:
                    continue
                seen.add(id(param))
                yield (f"{module_name}.{name}" if module_name else name), param

    def parameters(self, recurse: bool = True):
        return (p for _, p in self.named_parameters(recurse=recurse))

    # ------------------------------------------------------------ state
    def state_dict(self) -> "OrderedDict[str, Tensor]":
        """Name -> tensor, sharing storage with the parameters (as PyTorch's does)."""
        return OrderedDict((name, p.detach()) for name, p in self.named_parameters())

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy values into the parameters in place (device and dtype are the module's).
        Missing or unexpected keys (with ``strict``) and shape mismatches raise a
        RuntimeError listing every problem; nothing is copied then."""
        own = dict(self.named_parameters())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        problems = []
        if strict and missing:
            problems.append(f"missing keys: {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {unexpected}")
        values = {}
        for name, param in own.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            value = value.numpy() if isinstance(value, Tensor) else value
            value = value.get() if hasattr(value, "__cuda_array_interface__") else np.asarray(value)
            if tuple(value.shape) != param.shape:
                problems.append(f"size mismatch for {name!r}: the file has shape {tuple(value.shape)}, "
                                f"the module has {param.shape}")
            elif value.dtype.kind not in "biuf":
                problems.append(f"{name!r} holds non-numeric data of dtype {value.dtype}")
            values[name] = value
        if problems:
            raise RuntimeError(f"error(s) loading state_dict into {type(self).__name__}: " + "; ".join(problems))
        for name, value in values.items():
            param = own[name]
            param.array[...] = param._backend.asarray(value.astype(param.dtype, copy=False))
            param._bump()
        return {"missing_keys": missing, "unexpected_keys": unexpected}

    # ------------------------------------------------------------ training helpers
    def zero_grad(self, set_to_none: bool = True) -> None:
        zero_grads(self.parameters(), set_to_none)

    def to(self, device=None, dtype=None) -> "Module":
        """Move (and/or cast) every parameter in place, gradients included; returns self."""
        if device is not None and dtype is None:
            try:
                get_backend(device)
            except ValueError:
                device, dtype = None, device  # module.to(dtype)
        backend = get_backend(device) if device is not None else None
        dtype = _check_dtype(dtype)
        if dtype is not None and dtype.kind != "f":
            raise TypeError(f"Module.to: parameters must stay floating point, got dtype {dtype}")
        for p in self.parameters():
            for t in (p, p.grad):
                if t is None:
                    continue
                target = backend or t._backend
                array = t.array if target.name == t._backend.name else target.asarray(t._backend.to_numpy(t.array))
                if dtype is not None:
                    array = array.astype(dtype, copy=False)
                if array is not t.array:  # a graph that saved the old array must not run on the new one
                    t.array, t._backend = array, target
                    t._bump()
        return self

    def cpu(self) -> "Module":
        return self.to("cpu")

    def cuda(self, index: int = 0) -> "Module":
        return self.to(f"cuda:{index}")

    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"  ({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        body = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({body})"
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"


class Linear(Module):
    """y = x W^T + b with W of shape (out_features, in_features), initialised as
    in PyTorch: kaiming_uniform(a=sqrt(5)) for W, i.e. U(-1/sqrt(in), 1/sqrt(in)),
    and the same bound for b. ``generator`` (a NumPy Generator) makes it reproducible."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None,
                 generator=None):
        super().__init__()
        for name, n in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
                raise ValueError(f"Linear: {name} must be a non-negative integer, got {n!r}")
        dtype = _check_dtype(dtype) or np.dtype(np.float32)
        if dtype.kind != "f":
            raise TypeError(f"Linear: dtype must be floating point, got {dtype}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        rng = random.generator(generator)  # td.manual_seed makes it reproducible
        self.weight = Parameter(np.zeros((out_features, in_features), dtype=dtype), device=device)
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=rng)
        if bias:
            self.bias = Parameter(np.zeros(out_features, dtype=dtype), device=device)
            bound = 1 / math.sqrt(in_features) if in_features > 0 else 0.0
            init.uniform_(self.bias, -bound, bound, generator=rng)
        else:
            self.bias = None

    def forward(self, input: Tensor) -> Tensor:
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Sequential(Module):
    """Modules applied in order: ``Sequential(Linear(4, 8), ReLU(), Linear(8, 1))``."""

    def __init__(self, *modules):
        super().__init__()
        named = modules[0].items() if len(modules) == 1 and isinstance(modules[0], OrderedDict) \
            else ((str(i), m) for i, m in enumerate(modules))
        for name, module in named:
            if not isinstance(module, Module):
                raise TypeError(f"Sequential takes Modules, got {type(module).__name__} at position {name}")
            setattr(self, name, module)

    def forward(self, input):
        for module in self._modules.values():
            input = module(input)
        return input

    def __getitem__(self, index):
        modules = list(self._modules.values())
        return Sequential(*modules[index]) if isinstance(index, slice) else modules[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class _Activation(Module):
    fn = None

    def forward(self, input):
        return type(self).fn(input)


class ReLU(_Activation):
    fn = staticmethod(F.relu)


class Sigmoid(_Activation):
    fn = staticmethod(F.sigmoid)


class Identity(Module):
    def forward(self, input):
        return input
