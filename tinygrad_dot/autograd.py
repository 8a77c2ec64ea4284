"""The tape: recording differentiable ops and replaying them backwards.

Every op result that needs a gradient carries ``_parents``: a tuple of
``(parent, vjp)`` pairs, where ``vjp(g)`` maps the gradient of the result to
the gradient of that parent, or to its broadcast: a gradient whose shape is
not its parent's is summed back over the broadcast axes here, once for every
op (as HIPS autograd does), so that no op repeats it. A global counter stamps each recorded result, so
the nodes reachable from a loss, sorted by stamp, are exactly the Wengert list
of the forward pass; ``backward`` walks it in reverse with an explicit stack
(no recursion, so graph depth is unbounded) and frees it as it goes.

A vjp reads arrays that the forward pass saved (an input, or the output). Each
saved array's storage has a version counter (``Tensor._counter``) that every
in-place change bumps; ``record`` notes the versions and ``backward`` refuses
to use a saved array that has changed since, as PyTorch does.
"""
from __future__ import annotations

import itertools
import operator
import threading

_FREED = ()  # _parents of a node whose graph was released by backward()
_by_stamp = operator.attrgetter("_stamp")
_stamp = itertools.count()


class _GradMode(threading.local):
    enabled = True


_grad_mode = _GradMode()


def is_grad_enabled() -> bool:
    return _grad_mode.enabled


class _GradModeScope:
    """Grad mode set to ``self.mode`` inside a ``with`` block or a decorated function,
    and restored after it."""

    mode = True

    def __enter__(self):
        self._prev = _grad_mode.enabled
        _grad_mode.enabled = self.mode

    def __exit__(self, *exc):
        _grad_mode.enabled = self._prev

    def __call__(self, fn):
        import functools

        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with _Scope(mode):  # a fresh scope per call: recursion and threads nest correctly
                return fn(*args, **kwargs)

        return wrapper


class _Scope(_GradModeScope):
    def __init__(self, mode: bool):
        self.mode = bool(mode)


class set_grad_enabled(_GradModeScope):
    """Turn recording on or off. As in PyTorch, the call itself takes effect at once
    (``td.set_grad_enabled(False)`` on a line of its own); as a context manager it
    restores the previous mode on exit, and as a decorator it changes nothing until
    the function runs."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self._prev = _grad_mode.enabled
        _grad_mode.enabled = self.mode

    def __enter__(self):  # the mode is already set; __exit__ restores what was before the call
        pass

    def __call__(self, fn):
        _grad_mode.enabled = self._prev  # a decorator: undo the call's effect
        return super().__call__(fn)


class _BareDecorator(_GradModeScope):
    """A scope that also decorates without parentheses, as PyTorch's do: ``@td.no_grad``."""

    def __new__(cls, *args):
        if len(args) == 1 and callable(args[0]):
            return cls()(args[0])
        return super().__new__(cls)


class no_grad(_BareDecorator):
    """``with td.no_grad():`` (or ``@td.no_grad``) runs ops without recording them."""

    mode = False


class enable_grad(_BareDecorator):
    mode = True


class inference_mode(_BareDecorator):
    """PyTorch's inference_mode: here the same as no_grad (nothing is recorded; tensors
    made inside carry no version-counter cost either, since only saved tensors get one)."""

    def __init__(self, mode: bool = True):
        self.mode = not mode


class GradFn:
    """What ``tensor.grad_fn`` shows: the op that made a tensor (``<MulBackward>``)."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


def grad_fn(node):
    """The GradFn of a recorded result, named after its op; None for a leaf."""
    if node._parents is None:
        return None
    if node._saved is not None and node._saved[0]:
        op = node._saved[0]
    elif node._parents:  # an op that saved nothing: the function that defined its vjp
        op = node._parents[0][1].__qualname__.split(".")[0]
    else:
        op = "released"
    return GradFn("".join(part.capitalize() for part in op.split("_")) + "Backward")


def unbroadcast(grad, shape):
    """Sum a gradient back to the shape of an input that was broadcast.

    Broadcasting repeats an input along new leading axes and along axes of
    length 1; the gradient of a repeat is the sum over the repeats.
    """
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


def record(cls, data, backend, *edges, op: str = "", saved=(), saves_output: bool = False, view_of=None):
    """Wrap an op's output array as a tensor and put it on the tape.

    ``edges`` are ``(parent_tensor, vjp)`` pairs. A vjp returns a new array, its
    input ``g`` itself, or a view (never an array it keeps elsewhere), so the
    engine knows when a gradient can be stored without a copy; in the parent's
    shape or in a broadcast of it, which backward sums back (unbroadcast). Nothing is
    recorded when grad mode is off or no parent needs a gradient.

    ``saved``: the tensors whose arrays the vjps read (``saves_output``: the
    output's too), checked for in-place changes by backward(); ``op`` names the
    op in that error. ``view_of``: the input whose storage the output may alias
    (reshape, indexing): the two then share one version counter.
    """
    out = cls._wrap(data, backend)
    if view_of is not None and view_of.xp.may_share_memory(out.array, view_of.array):
        out._counter = view_of._shared_counter()
    if _grad_mode.enabled:
        kept = [edge for edge in edges if edge[0].requires_grad]
        if kept:
            out.requires_grad = True
            out._parents = kept
            out._stamp = next(_stamp)
            if saved or saves_output or op:  # (an op name alone names grad_fn; nothing to check)
                entries = []
                for t in saved + (out,) if saves_output else saved:
                    counter = t._counter
                    if counter is None:  # inline _shared_counter(): this runs for most recorded ops
                        counter = t._counter = [0]
                    entries.append((counter, counter[0], t.array))
                out._saved = (op, entries)
    return out


def _check_saved(saved) -> None:
    op, entries = saved
    for counter, version, array in entries:
        if counter[0] != version:
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by an inplace "
                f"operation: a {array.dtype} tensor of shape {tuple(array.shape)} saved by {op} is at version "
                f"{counter[0]}; expected version {version} instead. Change it out of place (or on a clone()), "
                "or run the in-place change after backward()")


def _accumulate_leaf(leaf, grad, owned: bool) -> None:
    """Add ``grad`` into ``leaf.grad``. ``owned``: nothing else refers to ``grad``,
    so it can become ``.grad`` without a copy (users and clip_grad_norm_ modify
    ``.grad`` in place, so a shared array must be copied first)."""
    if grad.dtype != leaf.dtype:
        grad, owned = grad.astype(leaf.dtype), True
    if leaf.grad is None:
        # _wrap turns a NumPy scalar (what 0-d arithmetic returns) into a 0-d array
        leaf.grad = type(leaf)._wrap(grad if owned else grad.copy(), leaf._backend)
    else:
        leaf.grad.array += grad
        leaf.grad._bump()


def run_backward(root, grad, retain_graph: bool = False) -> None:
    """Accumulate d(root)/d(leaf), contracted with ``grad``, into every leaf's ``.grad``."""
    if root._parents is None:  # the root is itself a leaf
        _accumulate_leaf(root, grad, owned=False)
        return
    nodes, seen, stack = [], {id(root)}, [root]
    while stack:
        node = stack.pop()
        if node._parents is _FREED:
            raise RuntimeError(
                "backward through a graph that a previous backward() already released; "
                "pass retain_graph=True to the first call if you need to go through it twice"
            )
        nodes.append(node)
        for parent, _ in node._parents:
            if parent._parents is not None and id(parent) not in seen:
                seen.add(id(parent))
                stack.append(parent)
    if len(nodes) > 1:
        nodes.sort(key=_by_stamp, reverse=True)

    pending = {id(root): grad}
    for node in nodes:
        g = pending.pop(id(node), None)
        edges, saved = node._parents, node._saved
        if not retain_graph:
            node._parents = _FREED
            if saved is not None:
                node._saved = None
        if g is None:
            continue
        if saved is not None:
            _check_saved(saved)
        for parent, vjp in edges:
            pg = vjp(g)
            if pg.shape != parent.array.shape:  # the one place broadcasting is undone, for every op
                pg = unbroadcast(pg, parent.array.shape)
            if parent._parents is None:
                # A vjp returns a fresh array, its input g, or a view: only the first is owned.
                _accumulate_leaf(parent, pg, owned=pg is not g and getattr(pg, "base", None) is None)
            else:
                key = id(parent)
                pending[key] = pending[key] + pg if key in pending else pg
