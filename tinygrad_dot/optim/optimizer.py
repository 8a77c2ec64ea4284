"""The optimizer base class: parameter groups, per-parameter state, state_dict.

Updates run in place on ``p.array`` through the parameter's own array module
(numpy or cupy), outside the tape, so one implementation serves every device;
``step`` bumps each updated parameter's version counter, so a graph recorded
before the step refuses to backpropagate through the changed values.
"""
from __future__ import annotations

import copy
import numbers

from ..nn.utils import zero_grads
from ..tensor import Tensor


class Optimizer:
    """Subclasses define ``defaults`` (their hyperparameters) and ``_update``."""

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self.state: dict[int, dict] = {}  # keyed by id(param): tensors compare elementwise, not by identity
        self.param_groups: list[dict] = []
        if isinstance(params, Tensor):
            raise TypeError("params must be an iterable of tensors or of dicts (parameter groups), "
                            "not a single tensor; wrap it in a list")
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: dict) -> None:
        group = dict(group)
        params = group.get("params")
        params = [params] if isinstance(params, Tensor) else list(params or [])
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize tensors, got {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("optimizer can only optimize leaf tensors (a computed tensor's value is not "
                                 "its own to update); pass the parameters themselves")
        taken = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in taken for p in params) or len({id(p) for p in params}) != len(params):
            raise ValueError("some parameters appear in more than one parameter group (or twice in one)")
        group["params"] = params
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        unknown = set(group) - set(self.defaults) - {"params", "initial_lr"}
        if unknown:
            raise TypeError(f"{type(self).__name__} got unknown hyperparameter(s) {sorted(unknown)}; "
                            f"it takes {sorted(self.defaults)}")
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group: dict) -> None:
        for name in ("lr", "weight_decay", "eps", "momentum"):
            value = group.get(name)
            if value is not None and (not isinstance(value, numbers.Real) or value < 0):
                raise ValueError(f"invalid {name} {value!r}: it must be a number >= 0")

    def zero_grad(self, set_to_none: bool = True) -> None:
        zero_grads(self._params(), set_to_none)

    def step(self, closure=None):
        """One update of every parameter that has a gradient. ``closure`` (optional)
        re-evaluates the loss under grad mode and returns it, as in PyTorch."""
        loss = closure() if closure is not None else None
        state, update = self.state, self._update  # this loop runs every step: keep it lean
        for group in self.param_groups:
            for p in group["params"]:
                grad = p.grad
                if grad is not None:
                    own = state.get(id(p))
                    if own is None:
                        own = state[id(p)] = {}
                    update(p, grad.array, group, own)
                    p._bump()
        return loss

    def _update(self, p: Tensor, grad, group: dict, state: dict) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------ (de)serialisation
    # ``state`` is keyed by id(param), which a copy does not keep: pickle and deepcopy
    # carry it keyed by the parameter's position and re-key it on the copied parameters.
    def __getstate__(self) -> dict:
        position = {id(p): i for i, p in enumerate(self._params())}
        values = dict(self.__dict__)
        values["state"] = {position[key]: s for key, s in self.state.items() if key in position}
        return values

    def __setstate__(self, values: dict) -> None:
        self.__dict__.update(values)
        params = list(self._params())
        self.state = {id(params[i]): s for i, s in values["state"].items()}

    def _params(self):
        return (p for group in self.param_groups for p in group["params"])

    def state_dict(self) -> dict:
        """PyTorch's layout: ``{"state": {index: {...}}, "param_groups": [{..., "params": [index, ...]}]}``.
        State arrays come back as tensors sharing storage with the optimizer's."""
        index, groups = {}, []
        for group in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        params = {id(p): p for g in self.param_groups for p in g["params"]}
        state = {}
        for key, values in self.state.items():
            if key in index and values:
                backend = params[key]._backend
                state[index[key]] = {k: Tensor._wrap(v, backend) if backend.is_array(v) else v
                                     for k, v in values.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyperparameters and state; arrays are copied onto each parameter's device and dtype."""
        try:
            groups, saved_state = state_dict["param_groups"], state_dict["state"]
        except (KeyError, TypeError):
            raise ValueError("an optimizer state_dict has the keys 'state' and 'param_groups'") from None
        if len(groups) != len(self.param_groups):
            raise ValueError(f"the state_dict has {len(groups)} parameter group(s), this optimizer "
                             f"{len(self.param_groups)}")
        for i, (saved, own) in enumerate(zip(groups, self.param_groups)):
            if len(saved["params"]) != len(own["params"]):
                raise ValueError(f"parameter group {i} has {len(saved['params'])} parameters in the state_dict "
                                 f"and {len(own['params'])} in this optimizer")
        state = {}
        for saved, own in zip(groups, self.param_groups):
            for saved_index, p in zip(saved["params"], own["params"]):
                values = saved_state.get(saved_index, saved_state.get(str(saved_index)))
                if values:
                    state[id(p)] = {k: self._restore(v, p, k) for k, v in values.items()}
        for saved, own in zip(groups, self.param_groups):
            own.update({k: copy.deepcopy(v) for k, v in saved.items() if k != "params"})
        self.state = state

    @staticmethod
    def _restore(value, p: Tensor, name: str):
        if isinstance(value, (numbers.Number, str)) or value is None:
            return value
        array = value.numpy() if isinstance(value, Tensor) else value
        array = p._backend.asarray(array)
        if name != "step" and tuple(array.shape) != p.shape:
            raise ValueError(f"optimizer state {name!r} has shape {tuple(array.shape)}, its parameter {p.shape}")
        return array.astype(p.dtype, copy=True)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines + [")"])
