"""Saving and loading tensors, state dicts and models: ``td.save(obj, path)`` / ``td.load(path)``.

File format (version 1): an uncompressed NumPy ``.npz`` archive (a zip file
whose every member is checked by CRC-32 on reading) holding

* ``__header__``: a uint8 array of UTF-8 JSON
  ``{"format": "tinygrad_dot", "version": 1, "kind": ..., "payload": TREE}``;
* ``a0``, ``a1``, ...: the arrays (numeric or bool dtypes only), as ``.npy`` members.

TREE is JSON in which every JSON object is a tagged node, so user data can
never be mistaken for structure: ``{"dict": [[key, TREE], ...]}`` (keys are
str or int), ``{"tuple": [TREE, ...]}``, ``{"array": "a3"}``,
``{"tensor": "a3", "requires_grad": bool}``; lists, strings, numbers, booleans
and null stand for themselves (non-finite floats as JSON's NaN/Infinity
extension, as Python's json module writes them).

Writing goes to a temporary file in the target directory, is flushed and
fsync'ed, then renamed over the target (``os.replace``), so a crash leaves
either the old file or the new one, never half of one. Reading uses
``allow_pickle=False``: a file can hold data only, and loading never runs code.
A truncated or corrupted file, or one from a newer format version, raises a
ValueError that says so.
"""
from __future__ import annotations

import json
import numbers
import os

import numpy as np

from ._files import atomic_writer

from .tensor import Tensor

FORMAT_NAME = "tinygrad_dot"
FORMAT_VERSION = 1
_HEADER = "__header__"


# ----------------------------------------------------------------- encoding


class _Encoder:
    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}

    def _store(self, array) -> str:
        array = array.get() if hasattr(array, "__cuda_array_interface__") else np.asarray(array)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"td.save stores numeric or bool arrays only, got dtype {array.dtype}")
        name = f"a{len(self.arrays)}"
        self.arrays[name] = array
        return name

    def encode(self, obj, where: str = "obj"):
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, Tensor):
            return {"tensor": self._store(obj.numpy()), "requires_grad": bool(obj.requires_grad)}
        if isinstance(obj, np.ndarray) or hasattr(obj, "__cuda_array_interface__"):
            return {"array": self._store(obj)}
        if isinstance(obj, (numbers.Number, np.generic)):
            value = obj.item() if isinstance(obj, np.generic) else obj
            if isinstance(value, complex) or not isinstance(value, (int, float, bool)):
                raise TypeError(f"td.save: {where} is a {type(obj).__name__}, which the format cannot hold")
            return value
        if isinstance(obj, dict):
            items = []
            for key, value in obj.items():
                if isinstance(key, np.integer):
                    key = int(key)
                if not isinstance(key, (str, int)) or isinstance(key, bool):
                    raise TypeError(f"td.save: dict keys must be str or int, {where} has key {key!r}")
                items.append([key, self.encode(value, f"{where}[{key!r}]")])
            return {"dict": items}
        if isinstance(obj, (list, tuple)):
            values = [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]
            return values if isinstance(obj, list) else {"tuple": values}
        raise TypeError(f"td.save: {where} is a {type(obj).__name__}; the format holds tensors, arrays, "
                        "numbers, strings, None and dicts/lists/tuples of them (no arbitrary objects)")


def _decode(node, arrays, device):
    if isinstance(node, list):
        return [_decode(v, arrays, device) for v in node]
    if not isinstance(node, dict):
        return node
    if "dict" in node:
        return {key: _decode(value, arrays, device) for key, value in node["dict"]}
    if "tuple" in node:
        return tuple(_decode(v, arrays, device) for v in node["tuple"])
    if "array" in node:
        return arrays[node["array"]]
    if "tensor" in node:
        return Tensor(arrays[node["tensor"]], device=device, requires_grad=bool(node.get("requires_grad")))
    raise ValueError(f"unknown node {sorted(node)} in the file's header")


# ----------------------------------------------------------------- public API


def save(obj, path, kind: str = "object") -> None:
    """Write ``obj`` (a tensor, an array, or dicts/lists of them and of plain values) to ``path`` atomically."""
    encoder = _Encoder()
    payload = encoder.encode(obj)
    header = json.dumps({"format": FORMAT_NAME, "version": FORMAT_VERSION, "kind": kind, "payload": payload})
    members = {_HEADER: np.frombuffer(header.encode("utf-8"), dtype=np.uint8), **encoder.arrays}
    with atomic_writer(os.fspath(path)) as f:
        np.savez(f, **members)


def _foreign_format(path) -> str | None:
    """Why the file is evidently not a zip archive (what td.save writes), or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return None  # let np.load report it
    if head.startswith(b"PK"):
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


def _read(path):
    """(header dict, {name: array}) with every member read and CRC-checked."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path!r}")
    if os.path.isdir(path):
        raise ValueError(f"{path!r} is a directory, not a tinygrad_dot file")
    not_ours = _foreign_format(path)
    if not_ours:
        raise ValueError(f"{path!r} is not a tinygrad_dot file ({not_ours})")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except Exception as exc:  # zipfile and numpy raise many types on damaged input; all mean the same here
        if "allow_pickle" in str(exc):  # NumPy's advice to unpickle does not apply: td files hold no objects
            raise ValueError(f"{path!r} is not a tinygrad_dot file (it holds pickled Python objects, which "
                             "tinygrad_dot files never contain and td.load never reads)") from None
        raise ValueError(f"{path!r} is not a readable tinygrad_dot file: it is truncated, corrupted or "
                         f"of another format ({type(exc).__name__}: {exc})") from None
    if _HEADER not in arrays:
        raise ValueError(f"{path!r} is not a tinygrad_dot file: it has no {_HEADER} member")
    try:
        header = json.loads(arrays.pop(_HEADER).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path!r}: the header of this tinygrad_dot file is corrupted ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME or "payload" not in header:
        raise ValueError(f"{path!r} is not a tinygrad_dot file (its header names no tinygrad_dot format)")
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"{path!r}: invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(f"{path!r} was written in format version {version}; this tinygrad_dot reads versions "
                         f"up to {FORMAT_VERSION}: upgrade tinygrad_dot to load it")
    return header, arrays


def load(path, device=None, kind: str | None = None):
    """Read what ``save`` wrote. Tensors come back on ``device`` (the CPU by
    default); arrays as NumPy arrays. ``kind`` (optional) must match the saved kind."""
    header, arrays = _read(path)
    if kind is not None and header.get("kind") != kind:
        saved = header.get("kind")
        if saved == "object":
            payload = header.get("payload")
            what = ("tensor" if isinstance(payload, dict) and "tensor" in payload else
                    "state dict" if isinstance(payload, dict) and "dict" in payload else "object")
            raise ValueError(f"{os.fspath(path)!r} holds a saved {what} (written by td.save), not a {kind}; "
                             "read it with td.load")
        raise ValueError(f"{os.fspath(path)!r} holds a {saved!r}, not a {kind!r}")
    try:
        return _decode(header["payload"], arrays, device)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{os.fspath(path)!r}: the file's structure is corrupted ({type(exc).__name__}: {exc})") \
            from None


__all__ = ["save", "load", "FORMAT_VERSION"]
