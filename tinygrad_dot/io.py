"""Saving and loading tensors, state dicts and models: ``td.save(obj, path)`` / ``td.load(path)``.

File format (version 1): an uncompressed NumPy ``.npz`` archive (a zip file
whose every member is checked by CRC-32 on reading) holding

* ``__header__``: a uint8 array of UTF-8 JSON
  ``{"format": "tinygrad_dot", "version": 1, "kind": ..., "payload": TREE}``;
* ``a0``, ``a1``, ...: the arrays (numeric or bool dtypes only), as ``.npy`` members.

TREE is JSON in which every JSON object is a tagged node, so user data can
never be mistaken for structure: ``{"dict": [[key, TREE], ...]}`` (keys are
str or int), ``{"tuple": [TREE, ...]}``, ``{"array": "a3"}``,
``{"tensor": "a3", "requires_grad": bool, "device": "cuda:0"}`` (``device``, the
device it was saved from, is absent in files written before it was recorded:
they read as "cpu"); lists, strings, numbers, booleans
and null stand for themselves (non-finite floats as JSON's NaN/Infinity
extension, as Python's json module writes them).

Writing goes through ``_files.atomic_writer`` (temporary file, fsync, rename),
so a crash leaves either the old file or the new one, never half of one.
Containers may nest at most MAX_DEPTH deep and may not contain themselves.

Reading never runs code (no pickles) and bounds what it inflates: before any
array is allocated, every member's size as the zip directory declares it must
match what its ``.npy`` header declares, and their total must fit in
``max_bytes`` (by default 16 GiB or the memory available, whichever is less).
A truncated, corrupted, oversized or too deeply nested file, or one from a newer
format version, raises a ValueError that says so.
"""
from __future__ import annotations

import json
import math
import numbers
import os
import zipfile
from io import BytesIO  # the standard library's (this module is tinygrad_dot.io)

import numpy as np

from ._files import atomic_writer

from .backends import Backend, canonical_device, get_backend
from .tensor import Tensor, host_array

FORMAT_NAME = "tinygrad_dot"
FORMAT_VERSION = 1
_HEADER = "__header__"
# Containers (dicts, lists, tuples) nested deeper than this are refused on saving
# and on loading. It keeps the recursive coders and the header's JSON (up to
# 3 JSON levels per container) far below Python's recursion limit.
MAX_DEPTH = 100
DEFAULT_MAX_BYTES = 16 * 2**30  # td.load's default bound on the arrays' total size


# ----------------------------------------------------------------- encoding


class _Encoder:
    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}
        self.open_containers: set = set()  # ids of the containers being encoded: a cycle's members

    def _store(self, array) -> str:
        array = host_array(array)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"td.save stores numeric or bool arrays only, got dtype {array.dtype}")
        name = f"a{len(self.arrays)}"
        self.arrays[name] = array
        return name

    def encode(self, obj, where: str = "obj", depth: int = 0):
        if isinstance(obj, (dict, list, tuple)):
            if id(obj) in self.open_containers:
                raise ValueError(f"td.save: {where} is a {type(obj).__name__} that contains itself; "
                                 "the format holds trees only, not self-referencing objects")
            if depth >= MAX_DEPTH:
                raise ValueError(f"td.save: {where[:60]}... nests containers more than {MAX_DEPTH} deep "
                                 f"(the format's limit, io.MAX_DEPTH)")
            self.open_containers.add(id(obj))
            try:
                return self._encode_container(obj, where, depth + 1)
            finally:
                self.open_containers.discard(id(obj))
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, Tensor):
            return {"tensor": self._store(obj.numpy()), "requires_grad": bool(obj.requires_grad),
                    "device": obj.device}
        if isinstance(obj, np.ndarray) or hasattr(obj, "__cuda_array_interface__"):
            return {"array": self._store(obj)}
        if isinstance(obj, (numbers.Number, np.generic)):
            value = obj.item() if isinstance(obj, np.generic) else obj
            if isinstance(value, complex) or not isinstance(value, (int, float, bool)):
                raise TypeError(f"td.save: {where} is a {type(obj).__name__}, which the format cannot hold")
            return value
        raise TypeError(f"td.save: {where} is a {type(obj).__name__}; the format holds tensors, arrays, "
                        "numbers, strings, None and dicts/lists/tuples of them (no arbitrary objects)")

    def _encode_container(self, obj, where: str, depth: int):
        if isinstance(obj, dict):
            items = []
            for key, value in obj.items():
                if isinstance(key, np.integer):
                    key = int(key)
                if not isinstance(key, (str, int)) or isinstance(key, bool):
                    raise TypeError(f"td.save: dict keys must be str or int, {where} has key {key!r}")
                items.append([key, self.encode(value, f"{where}[{key!r}]", depth)])
            return {"dict": items}
        values = [self.encode(v, f"{where}[{i}]", depth) for i, v in enumerate(obj)]
        return values if isinstance(obj, list) else {"tuple": values}


def _decode(node, arrays, place, depth: int = 0):
    container = isinstance(node, list) or isinstance(node, dict) and ("dict" in node or "tuple" in node)
    if container and depth >= MAX_DEPTH:  # the same limit as saving: whatever td.save wrote loads
        raise ValueError(f"the header nests containers more than {MAX_DEPTH} deep (the format's limit)")
    if isinstance(node, list):
        return [_decode(v, arrays, place, depth + 1) for v in node]
    if not isinstance(node, dict):
        return node
    if "dict" in node:
        return {key: _decode(value, arrays, place, depth + 1) for key, value in node["dict"]}
    if "tuple" in node:
        return tuple(_decode(v, arrays, place, depth + 1) for v in node["tuple"])
    if "array" in node:
        return arrays[node["array"]]
    if "tensor" in node:
        location = node.get("device", "cpu")
        if not isinstance(location, str):
            raise ValueError(f"a tensor's device is {location!r}, not a device name")
        tensor = place(arrays[node["tensor"]], location)
        return tensor.requires_grad_() if node.get("requires_grad") else tensor
    raise ValueError(f"unknown node {sorted(node)} in the file's header")


# ----------------------------------------------------------------- public API


def save(obj, path, kind: str = "object") -> None:
    """Write ``obj`` (a tensor, an array, or dicts/lists of them and of plain values) to
    ``path`` atomically, or to a binary stream (``io.BytesIO``, an open file), as
    torch.save writes to either."""
    encoder = _Encoder()
    payload = encoder.encode(obj)
    header = json.dumps({"format": FORMAT_NAME, "version": FORMAT_VERSION, "kind": kind, "payload": payload})
    members = {_HEADER: np.frombuffer(header.encode("utf-8"), dtype=np.uint8), **encoder.arrays}
    if hasattr(path, "write"):  # the caller's stream: atomicity is the caller's
        np.savez(path, **members)
        return
    with atomic_writer(os.fspath(path)) as f:
        np.savez(f, **members)


def _head(path) -> bytes | None:
    """The first bytes of a file, or None when it cannot be opened (the zip reader then says why)."""
    try:
        with open(path, "rb") as f:
            return f.read(512)
    except OSError:
        return None


def _foreign_format(head: bytes | None) -> str | None:
    """Why data starting with ``head`` is evidently not a zip archive (what td.save writes), or None."""
    if head is None or head.startswith(b"PK"):
        return None
    if not head:
        return "the file is empty"
    if head.startswith(b"\x93NUMPY"):
        return "it is a single-array .npy file; read it with numpy.load"
    if head.startswith(b"\x80"):
        return "it is a Python pickle, which td.load never reads"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "it is not a .npz archive"
    first = text.splitlines()[0][:40] if text.strip() else ""
    return f"it is a text file, e.g. a CSV, starting {first!r}; td.save writes .npz archives"


class _Refused(ValueError):
    """A reason to refuse the file, already worded for the user."""


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def _available_memory() -> int | None:
    """Bytes of memory available to a new allocation now, or None if unknown: Linux's
    MemAvailable, less where a cgroup (v2) limit leaves less (containers see the
    host's MemAvailable but are killed at their own limit)."""
    free = None
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if free is None:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            return None
    try:
        with open("/sys/fs/cgroup/memory.max") as limit:
            cap = limit.read().strip()
        if cap != "max":
            # anonymous memory only: the page cache counted in memory.current is reclaimable
            with open("/sys/fs/cgroup/memory.stat") as stat:
                anon = next(int(line.split()[1]) for line in stat if line.startswith("anon "))
            free = min(free, max(0, int(cap) - anon))
    except (OSError, ValueError, IndexError, StopIteration):
        pass
    return free


def _load_limit(max_bytes) -> tuple:
    """(bytes, what sets them) that td.load may inflate."""
    if max_bytes is not None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, numbers.Integral) or max_bytes < 0:
            raise ValueError(f"td.load: max_bytes must be a non-negative int, got {max_bytes!r}")
        return int(max_bytes), "max_bytes"
    free = _available_memory()
    if free is not None and free < DEFAULT_MAX_BYTES:
        return free, "the memory available now"
    return DEFAULT_MAX_BYTES, "the default limit"


def _npy_header(f, name: str):
    """(shape, fortran_order, dtype, data offset) from a member's .npy header; f stays past it."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:  # 3.0 only adds UTF-8 field names of structured dtypes, which the format never holds
        raise ValueError(f"member {name!r} has .npy format version {version}")
    return shape, fortran, dtype, f.tell()


def _read_members(path, max_bytes, where: str) -> dict:
    """{name: array} of the archive, refusing before any allocation a member whose
    size in the zip directory differs from what its .npy header declares (a zip
    bomb declares a small array and inflates to gigabytes, or the reverse), and a
    total over the load limit. zipfile itself never inflates a member past its
    declared size and checks each one's CRC-32."""
    limit, limit_from = _load_limit(max_bytes)
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        total = sum(info.file_size for info in infos)
        if total > limit:
            raise _Refused(f"{where}: its arrays take {_size(total)} ({total} bytes) uncompressed, more than "
                           f"td.load allows ({_size(limit)}, {limit_from}); pass max_bytes= to load it")
        arrays = {}
        for info in infos:
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            with archive.open(info) as f:
                shape, fortran, dtype, offset = _npy_header(f, name)
            if dtype.hasobject:
                raise _Refused(f"{where} is not a tinygrad_dot file (it holds pickled Python objects, which "
                               "tinygrad_dot files never contain and td.load never reads)")
            if dtype.kind not in "biuf":
                raise ValueError(f"member {name!r} has dtype {dtype}; tinygrad_dot files hold numeric arrays only")
            declared = offset + math.prod(shape) * dtype.itemsize
            if declared != info.file_size:
                raise _Refused(f"{where} is corrupted: member {name!r} inflates to {info.file_size} bytes but "
                               f"its header declares {declared} (refused before inflating it)")
            with archive.open(info) as f:
                arrays[name] = np.lib.format.read_array(f, allow_pickle=False)
    return arrays


def _describe(path) -> str:
    """How messages name what is read: the path, or "the stream"."""
    return "the stream" if hasattr(path, "read") else repr(os.fspath(path))


def _read(path, max_bytes=None):
    """(header dict, {name: array}) with every member read and CRC-checked, from a path
    or a binary stream (read whole: the zip directory sits at its end)."""
    where = _describe(path)
    if hasattr(path, "read"):
        data = path.read()
        if not isinstance(data, bytes):
            raise TypeError(f"td.load: the stream gave {type(data).__name__}, not bytes; open it in binary mode")
        path, head = BytesIO(data), data[:512]
    else:
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no such file: {path!r}")
        if os.path.isdir(path):
            raise ValueError(f"{path!r} is a directory, not a tinygrad_dot file")
        head = _head(path)
    not_ours = _foreign_format(head)
    if not_ours:
        raise ValueError(f"{where} is not a tinygrad_dot file ({not_ours})")
    try:
        arrays = _read_members(path, max_bytes, where)
    except _Refused as exc:
        raise ValueError(str(exc)) from None
    except Exception as exc:  # zipfile and numpy raise many types on damaged input; all mean the same here
        raise ValueError(f"{where} is not a readable tinygrad_dot file: it is truncated, corrupted or "
                         f"of another format ({type(exc).__name__}: {exc})") from None
    if _HEADER not in arrays:
        raise ValueError(f"{where} is not a tinygrad_dot file: it has no {_HEADER} member")
    try:
        header = json.loads(arrays.pop(_HEADER).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{where}: the header of this tinygrad_dot file is corrupted ({exc})") from None
    except RecursionError:  # nested past what json can parse: far past MAX_DEPTH, so never written by td.save
        raise ValueError(f"{where}: the header of this tinygrad_dot file nests containers more than "
                         f"{MAX_DEPTH} deep (the format's limit)") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME or "payload" not in header:
        raise ValueError(f"{where} is not a tinygrad_dot file (its header names no tinygrad_dot format)")
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"{where}: invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(f"{where} was written in format version {version}; this tinygrad_dot reads versions "
                         f"up to {FORMAT_VERSION}: upgrade tinygrad_dot to load it")
    return header, arrays


class _PlacementFailed(Exception):
    """Carries an error of placing a tensor past load's structure checks (which would
    otherwise report a bad map_location, or a missing GPU, as a corrupted file)."""


def _on(array, device, location: str) -> Tensor:
    try:
        backend = get_backend(device)
    except RuntimeError as exc:  # the device exists in name but not on this machine
        raise RuntimeError(f"a tensor saved on {location} cannot be restored on {canonical_device(device)} ({exc}); "
                           f"pass map_location='cpu' (or a dict such as {{{location!r}: 'cpu'}})") from None
    return Tensor(array, device=backend)


def _placement(map_location):
    """PyTorch's map_location as a function (host array, saved device name) -> Tensor.

    None: the saved device; a device name (or backend): that device for every
    tensor; a dict: saved device -> device, others stay on their saved device;
    a callable: ``f(tensor, location)`` gets the tensor on the CPU and the saved
    device name and returns the tensor to use (None: the saved device), as
    PyTorch's ``f(storage, location)`` does."""
    if map_location is None:
        def place(array, location):
            return _on(array, location, location)
    elif isinstance(map_location, dict):
        mapping = {canonical_device(k): canonical_device(v) for k, v in map_location.items()}

        def place(array, location):
            return _on(array, mapping.get(canonical_device(location), location), location)
    elif isinstance(map_location, (str, Backend)):
        target = canonical_device(map_location)

        def place(array, location):
            return _on(array, target, location)
    elif callable(map_location):
        def place(array, location):
            moved = map_location(Tensor(array), location)
            if moved is None:
                return _on(array, location, location)
            if not isinstance(moved, Tensor):
                raise TypeError(f"map_location returned a {type(moved).__name__}; it must return a td.Tensor "
                                "or None")
            return moved.detach()
    else:
        raise TypeError(f"map_location must be a device name, a dict of device names or a callable, got "
                        f"{type(map_location).__name__}")

    def guarded(array, location):
        try:
            return place(array, location)
        except Exception as exc:
            raise _PlacementFailed() from exc

    return guarded


def load(path, map_location=None, kind: str | None = None, *, max_bytes: int | None = None, device=None):
    """Read what ``save`` wrote (a path or a binary stream). Tensors come back on the device they were saved from
    unless ``map_location`` says otherwise, in PyTorch's forms: a device name
    ("cpu", "cuda:1"), a dict mapping saved devices to devices (``{"cuda:0":
    "cpu"}``), or a callable ``f(tensor_on_cpu, saved_device)``. ``device=`` is an
    older name of the device-name form. Arrays come back as NumPy arrays.
    ``kind`` (optional) must match the saved kind. ``max_bytes`` bounds the
    arrays' total uncompressed size (default: 16 GiB or the memory available,
    whichever is less); a larger file is refused before anything is allocated."""
    if device is not None:
        if map_location is not None:
            raise TypeError("td.load: pass map_location or device, not both")
        map_location = device
    place = _placement(map_location)  # a bad map_location fails before the file is read
    where = _describe(path)
    header, arrays = _read(path, max_bytes)
    if kind is not None and header.get("kind") != kind:
        saved = header.get("kind")
        if saved == "object":
            payload = header.get("payload")
            what = ("tensor" if isinstance(payload, dict) and "tensor" in payload else
                    "state dict" if isinstance(payload, dict) and "dict" in payload else "object")
            raise ValueError(f"{where} holds a saved {what} (written by td.save), not a {kind}; "
                             "read it with td.load")
        raise ValueError(f"{where} holds a {saved!r}, not a {kind!r}")
    try:
        return _decode(header["payload"], arrays, place)
    except _PlacementFailed as failed:
        raise failed.__cause__ from None
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{where}: the file's structure is corrupted ({type(exc).__name__}: {exc})") \
            from None


__all__ = ["save", "load", "FORMAT_VERSION", "MAX_DEPTH", "DEFAULT_MAX_BYTES"]
