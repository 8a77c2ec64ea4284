"""Modules: containers of parameters with PyTorch's API (``td.nn.Module``, ``Linear``, ``Sequential``)."""
from __future__ import annotations

import math
from collections import OrderedDict, namedtuple

import numpy as np

from .. import random
from ..backends import get_backend
from ..tensor import Tensor, _check_dtype, host_array, to_arguments
from . import functional as F
from . import init
from .utils import zero_grads


class IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What load_state_dict returns: PyTorch's named tuple; ``result["missing_keys"]``
    (this library's earlier dict form) still works."""
    __slots__ = ()

    def __getitem__(self, key):
        return getattr(self, key) if isinstance(key, str) else super().__getitem__(key)


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

    def add_module(self, name: str, module) -> None:
        """Register a sub-module (or None) under ``name``: what ModuleList and ModuleDict
        build on. Names follow PyTorch's rules (a non-empty str without '.', not an
        attribute the module already has)."""
        if not isinstance(name, str):
            raise TypeError(f"module name should be a str, got {type(name).__name__}")
        if not name or "." in name:
            raise KeyError(f"module name can't be empty or contain '.', got {name!r}")
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute {name!r} already exists in {type(self).__name__}")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        if module is None:
            self._modules[name] = None
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, module)

    register_module = add_module

    # ------------------------------------------------------------ traversal
    def named_modules(self, memo=None, prefix: str = "", remove_duplicate: bool = True):
        """(name, module) for this module and every sub-module, depth first, parents
        first; a module reachable twice comes once (unless ``remove_duplicate=False``)."""
        memo = set() if memo is None else memo
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if remove_duplicate:
                if module in memo:
                    continue
                memo.add(module)
            yield name, module
            children = [(f"{name}.{child}" if name else child, m) for child, m in module._modules.items()
                        if m is not None]
            stack.extend(reversed(children))

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_children(self):
        seen = set()
        for name, module in self._modules.items():
            if module is not None and module not in seen:
                seen.add(module)
                yield name, module

    def children(self):
        return (m for _, m in self.named_children())

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """(name, parameter) pairs in registration order, a module's own before its
        sub-modules'; a parameter shared by two modules comes once (unless
        ``remove_duplicate=False``)."""
        seen = set()
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse \
            else [(prefix, self)]
        for module_name, module in modules:
            for name, param in module._parameters.items():
                if param is None or (remove_duplicate and id(param) in seen):
                    continue
                seen.add(id(param))
                yield (f"{module_name}.{name}" if module_name else name), param

    def parameters(self, recurse: bool = True):
        return (p for _, p in self.named_parameters(recurse=recurse))

    def apply(self, fn) -> "Module":
        """Call ``fn`` on every sub-module, then on this one (PyTorch's order: an init
        function sees the children before the parent); returns self."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------ state
    def state_dict(self, *, destination=None, prefix: str = "", keep_vars: bool = False):
        """Name -> tensor (an OrderedDict), sharing storage with the parameters (as
        PyTorch's does). A parameter shared by two modules appears under both names,
        as in PyTorch; ``keep_vars`` gives the parameters themselves, not detached views."""
        destination = OrderedDict() if destination is None else destination
        for name, p in self.named_parameters(remove_duplicate=False):
            destination[prefix + name] = p if keep_vars else p.detach()
        return destination

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy values into the parameters in place (device and dtype are the module's).
        Missing or unexpected keys (with ``strict``) and shape mismatches raise a
        RuntimeError listing every problem; nothing is copied then. Returns PyTorch's
        named tuple ``(missing_keys, unexpected_keys)``."""
        if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
            raise TypeError(f"load_state_dict expects a dict of name -> tensor, got {type(state_dict).__name__}")
        own = dict(self.named_parameters(remove_duplicate=False))
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
            value = host_array(state_dict[name])
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
        return IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------ training helpers
    def zero_grad(self, set_to_none: bool = True) -> None:
        zero_grads(self.parameters(), set_to_none)

    def to(self, *args, device=None, dtype=None, non_blocking: bool = False) -> "Module":
        """Move and/or cast every parameter in place, gradients included; returns self.
        PyTorch's forms: ``to(device)``, ``to(dtype)``, ``to(device, dtype)``,
        ``to(tensor)`` (its device and dtype), keywords ``device=``, ``dtype=``
        (``non_blocking`` is accepted; copies are synchronous)."""
        device, dtype = to_arguments(args, device, dtype, "Module.to")
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

    def float(self) -> "Module":
        return self.to(dtype=np.float32)

    def double(self) -> "Module":
        return self.to(dtype=np.float64)

    def half(self) -> "Module":
        return self.to(dtype=np.float16)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Turn gradient tracking of every parameter on or off (freezing a layer); returns self."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

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


class ModuleList(Module):
    """Sub-modules in a list, registered as '0', '1', ... (found by parameters(),
    state_dict(), to()); indexing, slicing, append, extend, insert and del as in
    PyTorch. It has no forward: iterate over it in the owner's forward."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _renumber(self, modules) -> None:
        # Names are positions: after an insert or a deletion every name is rewritten.
        for name in list(self._modules):
            object.__delattr__(self, name)
        self._modules.clear()
        for i, module in enumerate(modules):
            self.add_module(str(i), module)

    def _index(self, index: int) -> int:
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
            raise TypeError(f"ModuleList indices must be integers or slices, not {type(index).__name__}")
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} is out of range for a ModuleList of length {n}")
        return int(index) % n

    def __getitem__(self, index):
        modules = list(self._modules.values())
        if isinstance(index, slice):
            return ModuleList(modules[index])
        return modules[self._index(index)]

    def __setitem__(self, index, module) -> None:
        self.add_module(str(self._index(index)), module)

    def __delitem__(self, index) -> None:
        modules = list(self._modules.values())
        del modules[index if isinstance(index, slice) else self._index(index)]
        self._renumber(modules)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __iadd__(self, modules) -> "ModuleList":
        return self.extend(modules)

    def __add__(self, other) -> "ModuleList":
        return ModuleList(list(self) + list(other))

    def append(self, module) -> "ModuleList":
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules) -> "ModuleList":
        if isinstance(modules, Module) and not isinstance(modules, (ModuleList, Sequential)):
            raise TypeError(f"ModuleList.extend takes an iterable of Modules, got a {type(modules).__name__}")
        for module in modules:
            self.append(module)
        return self

    def insert(self, index: int, module) -> None:
        modules = list(self._modules.values())
        modules.insert(index, module)
        self._renumber(modules)


class ModuleDict(Module):
    """Sub-modules by name, in insertion order, registered under their keys; the dict
    methods of PyTorch's ModuleDict. It has no forward."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str):
        return self._modules[key]

    def __setitem__(self, key: str, module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]
        object.__delattr__(self, key)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key) -> bool:
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()

    def values(self):
        return self._modules.values()

    def pop(self, key: str):
        module = self[key]
        del self[key]
        return module

    def clear(self) -> None:
        for key in list(self._modules):
            del self[key]

    def update(self, modules) -> None:
        """From a mapping or an iterable of (key, module) pairs."""
        items = modules.items() if hasattr(modules, "items") else modules
        for entry in items:
            if not isinstance(entry, (tuple, list)) or len(entry) != 2:
                raise TypeError(f"ModuleDict.update takes a mapping or (key, module) pairs, got an element "
                                f"{entry!r}")
            self[entry[0]] = entry[1]


# ----------------------------------------------------------------- stateless layers


class _Stateless(Module):
    """A layer that only applies a function of nn.functional, with fixed arguments."""

    fn = None

    def forward(self, input):
        return type(self).fn(input)


class ReLU(Module):
    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = bool(inplace)

    def forward(self, input):
        return F.relu(input, self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class Sigmoid(_Stateless):
    fn = staticmethod(F.sigmoid)


class Tanh(_Stateless):
    fn = staticmethod(F.tanh)


class Identity(Module):
    """Returns its input; accepts and ignores any constructor arguments (as in PyTorch)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Softmax(Module):
    def __init__(self, dim: int | None = None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.softmax(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, input):
        return F.log_softmax(input, self.dim)


class Flatten(Module):
    """Flattens dimensions start_dim..end_dim (by default all but the batch dimension)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input):
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Dropout(Module):
    """F.dropout while training (``module.train()``, the default), the identity after
    ``module.eval()``; masks come from td's default generator (``td.manual_seed``)."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        F._check_probability(p)
        self.p, self.inplace = float(p), bool(inplace)

    def forward(self, input):
        return F.dropout(input, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


# ----------------------------------------------------------------- losses


class _Loss(Module):
    """A loss module: its arguments are stored and passed to the nn.functional form.
    ``size_average``/``reduce`` are PyTorch's deprecated pair, kept for its
    positional order."""

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__()
        self.reduction = F._reduction(size_average, reduce, reduction)


class MSELoss(_Loss):
    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    def forward(self, input, target):
        return F.l1_loss(input, target, reduction=self.reduction)


class CrossEntropyLoss(_Loss):
    """F.cross_entropy with PyTorch's constructor: weight (one per class), ignore_index,
    reduction, label_smoothing."""

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__(size_average, reduce, reduction)
        self.weight, self.ignore_index, self.label_smoothing = weight, ignore_index, label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(input, target, self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_Loss):
    """F.nll_loss with PyTorch's constructor: weight, ignore_index, reduction; after LogSoftmax."""

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        self.weight, self.ignore_index = weight, ignore_index

    def forward(self, input, target):
        return F.nll_loss(input, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """F.binary_cross_entropy_with_logits with PyTorch's constructor: weight, reduction, pos_weight."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean", pos_weight=None):
        super().__init__(size_average, reduce, reduction)
        self.weight, self.pos_weight = weight, pos_weight

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, self.weight, reduction=self.reduction,
                                                  pos_weight=self.pos_weight)
