"""td.save / td.load under abuse: zip bombs, deep and self-referencing structures,
permission bits, writers killed mid-write, and a seeded fuzz of damaged files."""
import io
import json
import os
import re
import signal
import stat
import struct
import subprocess
import sys
import textwrap
import time
import tracemalloc
import zlib
import zipfile

import numpy as np
import pytest

import tinygrad_dot as td
import tinygrad_dot.io as tio
from tinygrad_dot import _files

from test_io import assert_same, sample_state

GiB = 2**30


# ------------------------------------------------------------------ zip bombs
def _zip(path, members):
    """Write a zip archive by hand: members are (name, uncompressed size, crc32,
    raw deflate stream). Lets a test declare a gigabyte without ever holding one."""
    out, central = bytearray(), bytearray()
    for name, size, crc, data in members:
        name = name.encode()
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, len(data), size,
                               len(name), 0, 0, 0, 0, 0, len(out)) + name
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(data), size, len(name), 0)
        out += name + data
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(out), 0)
    path.write_bytes(bytes(out + central + end))


def _deflate_member(name, prefix: bytes, zeros: int):
    """(name, size, crc, stream) of prefix followed by `zeros` zero bytes, deflated
    a MiB at a time: after a full flush each zero MiB compresses to the same ~1 KB,
    so a GiB costs a thousand copies of one block instead of a GiB of work."""
    chunk = 2**20
    assert zeros % chunk == 0
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = comp.compress(prefix) + comp.flush(zlib.Z_FULL_FLUSH)
    block = comp.compress(bytes(chunk)) + comp.flush(zlib.Z_FULL_FLUSH)
    assert comp.compress(bytes(chunk)) + comp.flush(zlib.Z_FULL_FLUSH) == block  # steady state
    stream = head + block * (zeros // chunk) + comp.flush()
    crc = zlib.crc32(prefix)
    zero_chunk = bytes(chunk)
    for _ in range(zeros // chunk):
        crc = zlib.crc32(zero_chunk, crc)
    return name, len(prefix) + zeros, crc, stream


def _npy_header(shape, dtype="<f4") -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": dtype, "fortran_order": False, "shape": tuple(shape)})
    return out.getvalue()


def _td_header_member(payload):
    text = json.dumps({"format": "tinygrad_dot", "version": 1, "kind": "object", "payload": payload}).encode()
    data = _npy_header((len(text),), "|u1") + text
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    return "__header__.npy", len(data), zlib.crc32(data), comp.compress(data) + comp.flush()


@pytest.fixture(scope="module")
def gib_of_zeros():
    """A deflated member of 1 GiB of float32 zeros whose header says so, about 1 MB on disk."""
    return _deflate_member("a0.npy", _npy_header((GiB // 4,)), GiB)


def _peak_allocation(fn):
    """(exception raised by fn, peak bytes traced meanwhile; NumPy reports its buffers)."""
    tracemalloc.start()
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the caller checks what it was
        return exc, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    pytest.fail("no exception")


def test_zip_bomb_past_the_limit_is_refused_before_allocating(tmp_path, gib_of_zeros, monkeypatch):
    """1 MB on disk declaring 1 GiB: over max_bytes, or over the memory available
    when no limit is given, it is refused without allocating its arrays."""
    bomb = tmp_path / "bomb.npz"
    _zip(bomb, [_td_header_member({"array": "a0"}), gib_of_zeros])
    assert bomb.stat().st_size < 2 * 2**20
    exc, peak = _peak_allocation(lambda: tio.load(bomb, max_bytes=GiB // 2))
    assert isinstance(exc, ValueError) and peak < 64 * 2**20
    assert "1 GiB" in str(exc) and "max_bytes" in str(exc) and "bomb.npz" in str(exc)

    monkeypatch.setattr(tio, "_available_memory", lambda: GiB // 2)  # default: the memory available bounds it
    exc, peak = _peak_allocation(lambda: tio.load(bomb))
    assert isinstance(exc, ValueError) and peak < 64 * 2**20
    assert "the memory available now" in str(exc)

    monkeypatch.setattr(tio, "_available_memory", lambda: None)  # unknown: the 16 GiB default bounds it
    monkeypatch.setattr(tio, "DEFAULT_MAX_BYTES", GiB // 2)
    with pytest.raises(ValueError, match="the default limit"):
        tio.load(bomb)


def test_member_inflating_past_its_declared_array_is_refused(tmp_path, gib_of_zeros):
    """The .npy header declares 4 floats but the member inflates to 1 GiB (or the
    reverse: a header declaring 1 GiB in a small member): refused before reading."""
    name, size, crc, stream = _deflate_member("a0.npy", _npy_header((4,)), GiB)
    lying = tmp_path / "lying.npz"
    _zip(lying, [_td_header_member({"array": "a0"}), (name, size, crc, stream)])
    with pytest.raises(ValueError, match=r"corrupted: member 'a0' inflates to 1073741952 bytes but its header "
                                         r"declares 144 \(refused before inflating it\)"):
        tio.load(lying)

    data = _npy_header((GiB // 4,)) + bytes(64)  # 1 GiB declared, 64 bytes present
    short = tmp_path / "short.npz"
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    _zip(short, [_td_header_member({"array": "a0"}),
                 ("a0.npy", len(data), zlib.crc32(data), comp.compress(data) + comp.flush())])
    exc, peak = _peak_allocation(lambda: tio.load(short))
    assert isinstance(exc, ValueError) and "header declares 1073741952" in str(exc)
    assert peak < 64 * 2**20  # NumPy alone would allocate the gigabyte first


def test_max_bytes_is_validated_and_a_file_within_it_loads(tmp_path):
    td.save({"w": np.ones(1000)}, tmp_path / "f.npz")
    assert tio.load(tmp_path / "f.npz", max_bytes=10_000)["w"].shape == (1000,)
    with pytest.raises(ValueError, match="more than td.load allows"):
        tio.load(tmp_path / "f.npz", max_bytes=5_000)
    with pytest.raises(ValueError, match="max_bytes must be a non-negative int"):
        tio.load(tmp_path / "f.npz", max_bytes=-1)


# ------------------------------------------------------- nesting and cycles
def test_self_referencing_objects_are_a_valueerror(tmp_path):
    looped = {"a": 1}
    looped["self"] = looped
    chain = [1, [2]]
    chain[1].append(chain)
    via_tuple = []
    via_tuple.append((via_tuple,))
    for obj, where in ((looped, "obj['self']"), (chain, "obj[1][1]"), (via_tuple, "obj[0][0]")):
        with pytest.raises(ValueError, match=re.escape(where) + r" is a \w+ that contains itself"):
            tio.save(obj, tmp_path / "loop.npz")
    assert os.listdir(tmp_path) == []
    shared = [1, 2]
    tio.save({"x": shared, "y": shared}, tmp_path / "shared.npz")  # shared, not cyclic: fine
    assert tio.load(tmp_path / "shared.npz") == {"x": [1, 2], "y": [1, 2]}


def _nested(depth, leaf):
    obj = leaf
    for i in range(depth):
        obj = [obj] if i % 2 else {"k": obj}
    return obj


def test_nesting_is_bounded_the_same_on_saving_and_loading(tmp_path):
    deepest = _nested(tio.MAX_DEPTH, np.arange(3))
    tio.save(deepest, tmp_path / "deep.npz")  # the limit itself round-trips, array leaf included
    loaded = tio.load(tmp_path / "deep.npz")
    for i in reversed(range(tio.MAX_DEPTH)):
        loaded = loaded[0] if i % 2 else loaded["k"]
    np.testing.assert_array_equal(loaded, np.arange(3))
    for depth in (tio.MAX_DEPTH + 1, 5000):  # 5000 once raised RecursionError
        with pytest.raises(ValueError, match=f"more than {tio.MAX_DEPTH} deep"):
            tio.save(_nested(depth, 1), tmp_path / "deeper.npz")
    assert not (tmp_path / "deeper.npz").exists()


@pytest.mark.parametrize("depth", [tio.MAX_DEPTH + 1, 5000, 200_000])
def test_deeply_nested_headers_are_a_valueerror(tmp_path, depth):
    """A crafted header: within json's reach (our own limit) and far past it (json's RecursionError)."""
    header = '{"format": "tinygrad_dot", "version": 1, "kind": "object", "payload": ' + \
        "[" * depth + "]" * depth + "}"
    np.savez(tmp_path / "deep.npz", __header__=np.frombuffer(header.encode(), dtype=np.uint8))
    with pytest.raises(ValueError, match=f"nests containers more than {tio.MAX_DEPTH} deep"):
        tio.load(tmp_path / "deep.npz")


# ------------------------------------------------------------ writing files
def test_resaving_keeps_the_files_permission_bits(tmp_path):
    path = tmp_path / "model.npz"
    for mode in (0o600, 0o640, 0o444):
        td.save({"v": 1}, path)
        os.chmod(path, mode)
        td.save({"v": 2}, path)  # os.replace works on a read-only file in a writable folder
        assert stat.S_IMODE(path.stat().st_mode) == mode
        assert tio.load(path) == {"v": 2}
        os.chmod(path, 0o644)


_KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    import tinygrad_dot as td

    def dying_savez(f, **members):
        f.write(b"PK\\x03\\x04 half of an archive")
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    np.savez = dying_savez
    td.save({"v": 2}, sys.argv[1])
""")


def _run_killed_writer(target):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(target)], cwd=root,
                          capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()


def _temporaries(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_writer_killed_mid_write_leaves_the_old_file_and_its_temporary_goes_on_the_next_save(tmp_path):
    target = tmp_path / "model.npz"
    td.save({"v": 1}, target)
    _run_killed_writer(target)
    assert tio.load(target) == {"v": 1}  # never a partial file at the target name
    assert len(_temporaries(tmp_path)) == 1  # the killed writer's
    td.save({"other": 3}, tmp_path / "other.npz")  # the next save into the folder, to any file
    assert _temporaries(tmp_path) == []
    assert sorted(os.listdir(tmp_path)) == ["model.npz", "other.npz"]
    assert tio.load(target) == {"v": 1}


def test_a_live_writers_temporary_is_left_alone(tmp_path):
    """A temporary whose writer still holds its lock, or whose writer's pid is alive
    and which is young, may be a write in progress: only stale ones are removed."""
    live = tmp_path / f".model.npz.td{os.getppid()}-inprogress.tmp"  # a pid that is alive, unlocked
    live.write_bytes(b"PK")
    locked = tmp_path / ".model.npz.td999999999-locked.tmp"  # no such pid, but the lock is held
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
         "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); sys.stdin.read()", str(locked)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"locked\n"
        td.save({"v": 1}, tmp_path / "model.npz")
        assert _temporaries(tmp_path) == sorted([live.name, locked.name])
        old = time.time() - 2 * _files._STALE_AFTER_S  # unlocked and old: its pid was reused by another process
        os.utime(live, (old, old))
        td.save({"v": 2}, tmp_path / "model.npz")
        assert _temporaries(tmp_path) == [locked.name]
    finally:
        holder.communicate(b"", timeout=30)
    td.save({"v": 3}, tmp_path / "model.npz")  # the holder exited: its lock died with it
    assert _temporaries(tmp_path) == []


def test_unrelated_dotfiles_are_never_removed(tmp_path):
    for name in (".notes.tmp", ".model.npz.abc123.tmp", ".x.tdabc-1.tmp", "model.npz.td1-a.tmp"):
        (tmp_path / name).write_bytes(b"")
        os.utime(tmp_path / name, (0, 0))
    td.save({"v": 1}, tmp_path / "model.npz")
    assert len(os.listdir(tmp_path)) == 5


# ---------------------------------------------------------------------- fuzz
def _deflated_copy(src, dst):
    """The same td file with every member deflated, so the fuzz reaches the inflating path too."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info))


def test_fuzz_random_damage_raises_valueerror_or_loads_the_saved_data(tmp_path):
    """Seeded: a few hundred files with random bit flips, byte runs, truncations and
    appended garbage, stored and deflated. Each load either raises ValueError or
    returns exactly what was saved; never another exception, a crash or a hang."""
    rng = np.random.default_rng(20261203)
    state = sample_state(np.random.default_rng(1))
    tio.save(state, tmp_path / "stored.npz")
    _deflated_copy(tmp_path / "stored.npz", tmp_path / "deflated.npz")
    assert_same(state, tio.load(tmp_path / "deflated.npz"))
    originals = [(tmp_path / n).read_bytes() for n in ("stored.npz", "deflated.npz")]
    damaged, outcomes = tmp_path / "damaged.npz", {"raised": 0, "intact": 0}
    start = time.perf_counter()
    for case in range(400):
        data = bytearray(originals[case % 2])
        how = rng.integers(5)
        if how == 0:    # a few flipped bits
            for pos in rng.integers(0, len(data), rng.integers(1, 9)):
                data[pos] ^= 1 << int(rng.integers(8))
        elif how == 1:  # a run of random bytes
            pos = int(rng.integers(len(data)))
            run = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
            data[pos:pos + len(run)] = run
        elif how == 2:  # truncated
            del data[int(rng.integers(len(data))):]
        elif how == 3:  # flipped and truncated
            data[int(rng.integers(len(data)))] ^= 0xFF
            del data[int(rng.integers(len(data) // 2, len(data))):]
        else:           # garbage appended (the zip directory is found from the end)
            data += rng.integers(0, 256, int(rng.integers(1, 300)), dtype=np.uint8).tobytes()
        damaged.write_bytes(bytes(data))
        try:
            loaded = tio.load(damaged)
        except ValueError:
            outcomes["raised"] += 1
            continue
        assert_same(state, loaded)
        outcomes["intact"] += 1
    assert outcomes["raised"] > 200, outcomes
    assert time.perf_counter() - start < 30
