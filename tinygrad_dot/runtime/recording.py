"""Device "emu"'s arrays, and the recording that lets a CUDA graph capture their work.

On a GPU, stream capture records every kernel a step launches (ours and CuPy's)
and a replay runs them again on the same buffers. On "emu" our kernels run on the
CPU and everything else is NumPy, which leaves no trace to replay. So the arrays of
"emu" are ``EmuArray``: NumPy arrays (a subclass, so every NumPy function and
method takes them) whose operations, while a capture is recording, also append a
``Step`` that redoes them. A step is the call itself: replaying calls it again
on the same argument buffers and copies what it returns into the buffer the
capture got (so later steps, and the user's static outputs, see the new values).
Views (reshape, .T, basic slicing) alias memory and need no step of their own.

Outside a capture the only cost of recording is one check of ``_state`` per op.

What cannot be replayed is refused, never replayed with stale data: host reads
(``item``, ``float``, ``tolist``, printing: on a GPU they would synchronize the
capturing stream, which CUDA forbids), results whose shape depends on the data
(boolean-mask selection, ``nonzero``), and any "emu" work while a graph captures
another device.

Like CuPy, full reductions and integer indexing give 0-d arrays, not NumPy
scalars: a loss stays a buffer the graph can refresh.
"""
from __future__ import annotations

import numpy as np

# None: no capture (the usual case, one check per op); a Recording while a graph
# captures "emu"; a Refusal while one captures another device.
_state = None


class CaptureError(RuntimeError):
    """Something a CUDA graph cannot capture was asked for during a capture."""


def state():
    return _state


def set_state(new):
    global _state
    _state = new


class Refusal:
    """The state while a graph captures another device: "emu" work would not be part of it."""

    def __init__(self, device: str):
        self.device = device

    def before_launch(self, kernel, args) -> None:
        self.check(f"a launch of {kernel.expression}")

    def check(self, what: str):
        raise CaptureError(f"{what} on device 'emu' while a CUDA graph captures {self.device}: only "
                           f"{self.device}'s work is captured; move the tensors to {self.device}")


class Step:
    """One recorded operation: ``fn(*args, **kwargs)`` again, its fresh results copied into ``targets``."""

    __slots__ = ("fn", "args", "kwargs", "targets")

    def __init__(self, fn, args, kwargs, targets):
        self.fn, self.args, self.kwargs, self.targets = fn, args, kwargs, targets

    def __call__(self):
        result = self.fn(*self.args, **self.kwargs)
        if self.targets:
            results = result if isinstance(result, (tuple, list)) else (result,)
            for target, value in zip(self.targets, results):
                if target is not None:
                    np.copyto(target, value)

    def __repr__(self) -> str:
        return f"<Step {getattr(self.fn, '__qualname__', self.fn)}>"


def _root(a):
    """The array that owns a's memory (views chain through .base)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


class Recording:
    """A capture on "emu" in progress: the steps, the graph's private buffers, and
    the prior contents of the buffers it may have written.

    A capture on a GPU only records, it computes nothing; here the capture runs each
    op (its results have to exist for the code that follows) and then puts back every
    buffer from before the capture that an op may have written (the weights an
    optimizer step updates, say), so that after capturing, as on a GPU, only the
    replays change anything."""

    def __init__(self, device: str = "emu"):
        self.device = device
        self.steps: list = []
        self.private = {}   # id(root) -> root: buffers made during the capture (kept until reset)
        self.saved = []     # (root, copy): prior contents of buffers from before the capture
        self._saved = set()
        self.kept = []      # arrays a launch reaches through a raw address (kept alive with the graph)

    def check(self, what: str):
        """A refused operation (a host read, a shape that depends on the data)."""
        raise CaptureError(f"{what} during CUDA graph capture on 'emu': on a GPU it would read the device "
                           "from the host (or size a result by its data), which stream capture forbids. Read "
                           "static outputs after g.replay() instead, outside the `with td.cuda.graph(g)` block")

    def touch(self, a) -> None:
        """Before an op that may write ``a``: keep a copy of its buffer if it is from before the capture."""
        root = _root(a)
        key = id(root)
        if key in self.private or key in self._saved or not root.flags.writeable:
            return
        self._saved.add(key)
        self.saved.append((root, np.array(root, copy=True)))

    def add(self, fn, args, kwargs, inputs, results) -> None:
        """Record fn(*args, **kwargs), run over the plain arrays ``inputs``, which gave ``results``."""
        roots = {id(_root(a)) for a in inputs}
        targets = []
        for r in results:
            target = None
            if isinstance(r, np.ndarray) and id(_root(r)) not in roots:  # a fresh buffer, not a view
                if not r.flags.writeable:
                    raise CaptureError(f"{getattr(fn, '__name__', fn)} returned a read-only fresh array during "
                                       "CUDA graph capture on 'emu'; a replay could not refresh it")
                root = _root(r)
                self.private[id(root)] = root
                target = r
            targets.append(target)
        self.steps.append(Step(fn, args, kwargs, targets if any(t is not None for t in targets) else None))

    def keep(self, a) -> None:
        """An array a launch reaches by its raw address (an int the steps would not keep alive)."""
        self.touch(a)
        self.kept.append(a)

    def before_launch(self, kernel, args) -> None:
        for a in args:
            if isinstance(a, np.ndarray):
                self.touch(a)

    def add_launch(self, kernel, grid, block, args) -> None:
        """One of our kernels, launched (and run) during the capture: replayed as it was called."""
        self.steps.append(Step(kernel, (grid, block, args), {}, None))

    def finish(self) -> list:
        """End the capture: put back what it overwrote; the steps to replay."""
        for root, copy in reversed(self.saved):  # reversed: the earliest copy (the prior state) wins
            np.copyto(root, copy)
        self.saved.clear()
        return self.steps


def replay(steps) -> None:
    """Run recorded steps in order (as NumPy and our kernels run them eagerly)."""
    for step in steps:
        step()


# ----------------------------------------------------------------- EmuArray

def _plain(x, originals: dict):
    """x with EmuArrays (also inside a list or tuple) as plain ndarray views of the same
    memory; ``originals`` maps each view's id to its EmuArray (to hand back an input)."""
    if isinstance(x, EmuArray):
        plain = x.view(np.ndarray)
        originals[id(plain)] = x
        return plain
    if type(x) in (list, tuple) and any(isinstance(i, EmuArray) for i in x):
        return type(x)(_plain(i, originals) for i in x)
    return x


def _arrays(args, kwargs) -> list:
    """The ndarrays among (one level into) the arguments of a call."""
    out = []
    for x in (*args, *kwargs.values()):
        if isinstance(x, np.ndarray):
            out.append(x)
        elif type(x) in (list, tuple):
            out.extend(i for i in x if isinstance(i, np.ndarray))
    return out


def _host_scalars(r):
    """NumPy scalars in a result as 0-d arrays: buffers a replay can refresh."""
    if isinstance(r, np.generic):
        return np.asarray(r)
    if type(r) is tuple and any(isinstance(i, np.generic) for i in r):
        return tuple(_host_scalars(i) for i in r)
    return r


def _device(r, originals: dict):
    """A result as the device's: an input handed back is the caller's own EmuArray, a new
    array becomes an EmuArray (a 0-d one for a NumPy scalar, as CuPy gives)."""
    if isinstance(r, np.ndarray):
        original = originals.get(id(r))
        if original is not None:
            return original
        return r if type(r) is EmuArray else r.view(EmuArray)
    if type(r) in (tuple, list):
        return type(r)(_device(i, originals) for i in r)
    return r


# NumPy functions that answer about shapes and memory, not values: fine during a capture.
_METADATA = {"shape", "ndim", "size", "may_share_memory", "shares_memory", "result_type", "broadcast_shapes",
             "can_cast", "min_scalar_type", "promote_types", "isscalar", "iscomplexobj", "isrealobj"}
# NumPy functions whose result's shape depends on the values: a replay could not resize it.
_DATA_SHAPED = {"nonzero", "argwhere", "flatnonzero", "unique", "extract", "trim_zeros"}


def run(fn, args, kwargs, name=None):
    """fn(*args, **kwargs) on plain arrays, results as the device's, recorded while capturing."""
    originals = {}
    plain_args = tuple(_plain(a, originals) for a in args)
    plain_kwargs = {k: _plain(v, originals) for k, v in kwargs.items()} if kwargs else {}
    recording = _state
    if recording is not None:
        name = name or getattr(fn, "__name__", str(fn))
        if type(recording) is Refusal:
            recording.check(name)
        if name in _DATA_SHAPED:
            recording.check(f"{name}() (its result's shape depends on the data)")
        inputs = _arrays(plain_args, plain_kwargs)
        for a in inputs:  # conservatively: any argument may be written (out=, copyto, ...)
            recording.touch(a)
    result = _host_scalars(fn(*plain_args, **plain_kwargs))
    if recording is not None:
        if type(result) in (bool, int, float, complex) and name not in _METADATA and inputs:
            recording.check(f"{name}() (a Python value computed from device data)")
        recording.add(fn, plain_args, plain_kwargs, inputs, result if type(result) in (tuple, list) else (result,))
    return _device(result, originals)


def _method(name, data_shaped=False):
    """An ndarray method that computes or writes data, run and recorded like a function."""
    base = getattr(np.ndarray, name)

    def method(self, *args, **kwargs):
        if data_shaped and _state is not None and type(_state) is Recording:
            _state.check(f"ndarray.{name}() (its result's shape depends on the data)")
        return run(base, (self, *args), kwargs, name)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = base.__doc__
    return method


def _host_read(name):
    """An ndarray method that reads the data to the host: refused during a capture."""
    base = getattr(np.ndarray, name)

    def method(self, *args, **kwargs):
        if _state is not None:
            _state.check(f"{name}() of an 'emu' array")
        return base(self, *args, **kwargs)

    method.__name__ = method.__qualname__ = name
    return method


def _has_mask(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, np.ndarray) and i.dtype == np.bool_ and i.ndim > 0 for i in items)


class EmuArray(np.ndarray):
    """An array of device "emu": a NumPy array whose work a CUDA graph capture records
    (see the module docstring). Made by ``EmulatedBackend`` and its ``xp``."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        fn = ufunc if method == "__call__" else getattr(ufunc, method)
        return run(fn, inputs, kwargs, ufunc.__name__ if method == "__call__" else f"{ufunc.__name__}.{method}")

    def __array_function__(self, func, types, args, kwargs):
        return run(func, args, kwargs, func.__name__)

    # Methods that copy or write data (C code, no ufunc inside): recorded like functions.
    astype = _method("astype")
    copy = _method("copy")
    __copy__ = _method("__copy__")
    __deepcopy__ = _method("__deepcopy__")
    flatten = _method("flatten")
    ravel = _method("ravel")       # a copy when the array is not contiguous
    reshape = _method("reshape")   # likewise
    fill = _method("fill")
    sort = _method("sort")
    argsort = _method("argsort")
    argmax = _method("argmax")
    argmin = _method("argmin")
    take = _method("take")
    put = _method("put")
    repeat = _method("repeat")
    dot = _method("dot")
    round = _method("round")
    searchsorted = _method("searchsorted")
    choose = _method("choose")
    partition = _method("partition")
    nonzero = _method("nonzero", data_shaped=True)
    compress = _method("compress", data_shaped=True)

    def __getitem__(self, index):
        if _state is not None and _has_mask(index):
            _state.check("selecting with a boolean mask (the result's shape depends on the data)")
        return run(np.ndarray.__getitem__, (self, index), {}, "__getitem__")

    def __setitem__(self, index, value):
        run(np.ndarray.__setitem__, (self, index, value), {}, "__setitem__")

    # Host reads.
    item = _host_read("item")
    tolist = _host_read("tolist")
    tobytes = _host_read("tobytes")
    __float__ = _host_read("__float__")
    __int__ = _host_read("__int__")
    __index__ = _host_read("__index__")
    __complex__ = _host_read("__complex__")
    __bool__ = _host_read("__bool__")
    __iter__ = _host_read("__iter__")
    __repr__ = _host_read("__repr__")
    __str__ = _host_read("__str__")
    __format__ = _host_read("__format__")
    __reduce_ex__ = _host_read("__reduce_ex__")


def device_array(a) -> EmuArray:
    """An ndarray as an array of "emu" (the same object if it is one already)."""
    return a if type(a) is EmuArray else np.asarray(a).view(EmuArray)


class EmuNumpy:
    """The array module (``xp``) of device "emu": NumPy, whose functions give EmuArrays
    (``xp.zeros`` makes a device array, as ``cupy.zeros`` does) and are recorded
    during a capture. Ufuncs, types and submodules are NumPy's own (a ufunc on an
    EmuArray is recorded by the array)."""

    ndarray = np.ndarray  # isinstance(x, xp.ndarray): any NumPy array

    def __getattr__(self, name):
        value = getattr(np, name)
        if callable(value) and not isinstance(value, (type, np.ufunc)):
            value = _namespace_function(value)
        setattr(self, name, value)  # looked up once
        return value

    def __repr__(self) -> str:
        return "<numpy for device 'emu'>"


def _namespace_function(fn):
    def function(*args, **kwargs):
        return run(fn, args, kwargs, fn.__name__)

    function.__name__ = function.__qualname__ = fn.__name__
    function.__doc__ = fn.__doc__
    return function


xp = EmuNumpy()
