"""Atomic file writing, used for every file the package writes (models,
tensors, reports, plots, kernel caches): a reader, or a crash, never sees a
half-written file."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path


def _new_file_mode() -> int:
    """The mode open() would give a new file (0o666 less the umask); mkstemp's own is 0o600."""
    try:
        with open("/proc/self/status") as status:  # read without changing the process umask
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_writer(path):
    """``with atomic_writer(p) as f: f.write(...)``: the data goes to a temporary
    file beside ``p``, is fsync'ed, and is renamed over ``p`` only if the block
    finishes; the folder must exist."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _new_file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # make the rename durable where a folder can be opened
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def atomic_write(path, data: bytes, make_parents: bool = False) -> Path:
    if make_parents:  # caches create their folders; user-facing writes refuse a missing one
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path) as f:
        f.write(data)
    return Path(path)


def atomic_write_json(path, obj) -> Path:
    return atomic_write(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())
