"""Atomic file writing, used for every file the package writes (models,
tensors, reports, plots, kernel caches): a reader, or a crash, never sees a
half-written file."""
from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import tempfile
import time
from pathlib import Path

try:  # POSIX; without it the writer works the same but leaves stale temporaries alone
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

# Temporaries are named .<target>.td<pid>-<random>.tmp beside their target: the pid
# and the lock each writer holds on its temporary tell a live write from one whose
# process died (see _remove_stale_temporaries).
_TEMP_NAME = re.compile(r"^\..+\.td(?P<pid>\d+)-[A-Za-z0-9_]+\.tmp$")
# A temporary whose lock is free is still spared while this young and its pid is
# alive: the writer may be between creating it and locking it.
_STALE_AFTER_S = 60.0


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


def _target_mode(path: Path) -> int:
    """The permission bits the written file gets: an existing file's own (re-saving
    does not widen or narrow them), otherwise a new file's."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return _new_file_mode()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists, owned by someone else
        return True
    return True


def _remove_stale_temporaries(folder: Path) -> None:
    """Delete temporaries of our naming in folder left by writers that died mid-write
    (killed, power loss). A temporary is stale when nobody holds its lock (a lock
    dies with its process) and either its writer's pid is gone or it is older than
    _STALE_AFTER_S (the pid was reused). Never raises: cleaning up must not fail a save."""
    if fcntl is None:
        return
    try:
        entries = [e for e in os.scandir(folder) if e.name.endswith(".tmp") and e.name.startswith(".")]
    except OSError:
        return
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if not match or int(match["pid"]) == os.getpid():  # our own are removed by their writer
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live writer holds it
            old = time.time() - os.fstat(fd).st_mtime > _STALE_AFTER_S
            if old or not _pid_alive(int(match["pid"])):
                os.unlink(entry.path)
        except OSError:
            pass
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_writer(path):
    """``with atomic_writer(p) as f: f.write(...)``: the data goes to a temporary
    file beside ``p``, is fsync'ed, and is renamed over ``p`` only if the block
    finishes; the folder must exist. The result keeps the permission bits of the
    file it replaces. Afterwards, temporaries that killed writers left in the
    folder are removed."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.td{os.getpid()}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if fcntl is not None:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # held until closed: marks the temporary as in use
            yield f
            f.flush()
            os.fsync(f.fileno())
            os.chmod(tmp, _target_mode(path))
            os.replace(tmp, path)  # while still locked: a cleaner never takes a live temporary
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # make the rename durable where a folder can be opened
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    _remove_stale_temporaries(path.parent)


def atomic_write(path, data: bytes, make_parents: bool = False) -> Path:
    if make_parents:  # caches create their folders; user-facing writes refuse a missing one
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path) as f:
        f.write(data)
    return Path(path)


def atomic_write_json(path, obj) -> Path:
    return atomic_write(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())
