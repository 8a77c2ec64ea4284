"""td.io save/load: round trips, atomic writes, and every way a file can be damaged."""
import json
import os
import zipfile

import numpy as np
import pytest

import tinygrad_dot as td
import tinygrad_dot.io as tio
import tinygrad_dot.nn as nn

from conftest import rel_error


def sample_state(rng):
    return {
        "weight": td.tensor(rng.standard_normal((3, 4)).astype(np.float32), requires_grad=True),
        "bias": rng.standard_normal(3),
        "counts": rng.integers(0, 9, 5).astype(np.int32),
        "mask": rng.random(4) > 0.5,
        "step": 7, "lr": 0.25, "name": "layer", "nothing": None, "nan": float("nan"),
        "nested": {0: {"momentum_buffer": td.tensor(rng.standard_normal(2))}, "pair": (1, "two")},
        "list": [1.5, td.tensor(np.float16(2.0))],
    }


def assert_same(a, b):
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, td.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and a.requires_grad == b.requires_grad
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)
    else:
        assert a == b


def test_round_trip_keeps_values_types_and_dtypes(rng, tmp_path):
    state = sample_state(rng)
    tio.save(state, tmp_path / "state.npz")
    assert_same(state, tio.load(tmp_path / "state.npz"))
    tio.save(state["weight"], tmp_path / "tensor.npz")
    assert_same(state["weight"], tio.load(tmp_path / "tensor.npz"))


def test_module_state_dict_round_trip(rng, tmp_path):
    model = nn.Sequential(nn.Linear(4, 3, generator=rng), nn.Linear(3, 2, generator=rng))
    tio.save(model.state_dict(), tmp_path / "model.npz")
    fresh = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    fresh.load_state_dict(tio.load(tmp_path / "model.npz"))
    x = td.tensor(rng.standard_normal((5, 4)).astype(np.float32))
    np.testing.assert_array_equal(fresh(x).numpy(), model(x).numpy())


class SavedOnGpu(td.Tensor):
    """A CPU tensor that reports cuda:0: what td.save records for a tensor saved from a
    GPU, so that map_location can be tested on a machine without one."""

    @property
    def device(self):
        return "cuda:0"


def gpu_file(rng, tmp_path):
    weight = rng.standard_normal((3, 2)).astype(np.float32)
    state = {"weight": SavedOnGpu(weight, requires_grad=True), "step": td.tensor(4)}
    tio.save(state, tmp_path / "gpu.npz")
    return weight, tmp_path / "gpu.npz"


def test_load_map_location_forms(rng, tmp_path):
    weight, path = gpu_file(rng, tmp_path)
    with np.load(path, allow_pickle=False) as archive:
        header = json.loads(archive["__header__"].tobytes())
    assert [node["device"] for _, node in header["payload"]["dict"]] == ["cuda:0", "cpu"]
    seen = []

    def keep_on_cpu(tensor, location):  # PyTorch's map_location=lambda storage, loc: storage
        seen.append((location, tensor.device))
        return tensor

    for map_location in ("cpu", {"cuda:0": "cpu"}, {"cuda": "cpu"}, keep_on_cpu, td.tensor(0)._backend):
        loaded = tio.load(path, map_location=map_location)
        assert loaded["weight"].device == "cpu" and loaded["weight"].dtype == np.float32
        assert loaded["weight"].requires_grad and loaded["weight"].is_leaf and type(loaded["weight"]) is td.Tensor
        np.testing.assert_array_equal(loaded["weight"].numpy(), weight)
        assert loaded["step"].item() == 4 and loaded["step"].dtype == np.int64
    assert seen == [("cuda:0", "cpu"), ("cpu", "cpu")]
    assert tio.load(path, "cpu")["weight"].device == "cpu"  # positional, as torch.load(f, "cpu")
    assert tio.load(path, device="cpu")["weight"].device == "cpu"  # the older keyword


def test_load_without_map_location_restores_the_saved_device(rng, tmp_path):
    weight, path = gpu_file(rng, tmp_path)
    if td.cuda.is_available():
        assert tio.load(path)["weight"].device == "cuda:0"
    else:
        with pytest.raises(RuntimeError, match=r"saved on cuda:0.*map_location='cpu'.*\{'cuda:0': 'cpu'\}"):
            tio.load(path)
        with pytest.raises(RuntimeError, match="saved on cuda:0"):
            tio.load(path, map_location={"cuda:1": "cpu"})  # unmapped devices stay where they were saved
    # Files written before devices were recorded load on the CPU.
    np.savez(tmp_path / "old.npz", __header__=np.frombuffer(json.dumps(
        {"format": "tinygrad_dot", "version": 1, "kind": "object",
         "payload": {"tensor": "a0", "requires_grad": False}}).encode(), dtype=np.uint8), a0=weight)
    old = tio.load(tmp_path / "old.npz")
    assert old.device == "cpu" and not old.requires_grad
    np.testing.assert_array_equal(old.numpy(), weight)


def test_load_map_location_mistakes(rng, tmp_path):
    _, path = gpu_file(rng, tmp_path)
    with pytest.raises(TypeError, match="td.Tensor or None"):
        tio.load(path, map_location=lambda tensor, location: tensor.numpy())
    with pytest.raises(TypeError, match="map_location must be"):
        tio.load(path, map_location=3)
    with pytest.raises(ValueError, match="unknown device"):
        tio.load(path, map_location="tpu")
    with pytest.raises(TypeError, match="not both"):
        tio.load(path, "cpu", device="cpu")
    with pytest.raises(ZeroDivisionError):  # the callable's own error, not "corrupted file"
        tio.load(path, map_location=lambda tensor, location: 1 / 0)


def test_state_dict_through_a_file_into_pytorch_and_back(rng, tmp_path):
    model = nn.Sequential(nn.Linear(4, 3, generator=rng), nn.ReLU(), nn.Linear(3, 2, generator=rng)).double()
    tio.save(model.state_dict(), tmp_path / "model.npz")
    loaded = tio.load(tmp_path / "model.npz", map_location="cpu")
    assert list(loaded) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert all(v.dtype == np.float64 and not v.requires_grad for v in loaded.values())
    fresh = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))  # float32: load casts to the module's dtype
    assert fresh.load_state_dict(loaded, strict=True) == ([], [])
    x = rng.standard_normal((5, 4))
    assert rel_error(fresh(td.tensor(x.astype(np.float32))).numpy(), model(td.tensor(x)).numpy()) < 1e-6
    partial = {k: v for k, v in loaded.items() if k != "2.bias"}
    with pytest.raises(RuntimeError, match=r"missing keys: \['2.bias'\]"):
        fresh.load_state_dict(partial)
    assert fresh.load_state_dict(partial, strict=False).missing_keys == ["2.bias"]
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: the td round trip above still ran")
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2)).double()
    theirs.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in loaded.items()}, strict=True)
    np.testing.assert_allclose(theirs(torch.from_numpy(x)).detach().numpy(), model(td.tensor(x)).numpy(), rtol=1e-12)
    # and the other way: PyTorch's state dict, as arrays, saved by td and loaded into td
    tio.save({k: v.numpy() for k, v in theirs.state_dict().items()}, tmp_path / "theirs.npz")
    back = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).double()
    back.load_state_dict(tio.load(tmp_path / "theirs.npz"))
    np.testing.assert_allclose(back(td.tensor(x)).numpy(), model(td.tensor(x)).numpy(), rtol=1e-12)


def test_file_layout_is_the_documented_one(rng, tmp_path):
    tio.save({"w": rng.standard_normal(2)}, tmp_path / "f.npz", kind="state_dict")
    with zipfile.ZipFile(tmp_path / "f.npz") as archive:
        assert sorted(archive.namelist()) == ["__header__.npy", "a0.npy"]
    with np.load(tmp_path / "f.npz", allow_pickle=False) as archive:
        header = json.loads(archive["__header__"].tobytes())
    assert header == {"format": "tinygrad_dot", "version": 1, "kind": "state_dict",
                      "payload": {"dict": [["w", {"array": "a0"}]]}}


def test_unsupported_objects_are_refused_before_writing(tmp_path):
    class Custom:
        pass

    for bad in (Custom(), {"x": np.array(["text"])}, {(1, 2): 3}, {"f": lambda: 0}):
        with pytest.raises(TypeError):
            tio.save(bad, tmp_path / "bad.npz")
    assert os.listdir(tmp_path) == []


def test_every_truncation_raises_valueerror(rng, tmp_path):
    tio.save(sample_state(rng), tmp_path / "good.npz")
    data = (tmp_path / "good.npz").read_bytes()
    damaged = tmp_path / "damaged.npz"
    for cut in list(range(0, len(data), max(1, len(data) // 97))) + [len(data) - 1]:
        damaged.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="not a readable tinygrad_dot file|corrupted|not a tinygrad_dot"):
            tio.load(damaged)


def test_flipped_bytes_raise_or_leave_the_data_intact(rng, tmp_path):
    """A flipped byte is either detected (CRC-32, structure checks) or sits in a field
    that carries no data (e.g. a zip timestamp); it never yields different values."""
    state = sample_state(rng)
    tio.save(state, tmp_path / "good.npz")
    data = (tmp_path / "good.npz").read_bytes()
    damaged = tmp_path / "damaged.npz"
    detected = 0
    positions = range(0, len(data), 11)
    for position in positions:
        flipped = bytearray(data)
        flipped[position] ^= 0x5A
        damaged.write_bytes(bytes(flipped))
        try:
            loaded = tio.load(damaged)
        except ValueError:
            detected += 1
            continue
        assert_same(state, loaded)
    # Most bytes are array data or checked headers; zip bookkeeping (times, extra fields) is not.
    assert detected > 0.6 * len(positions)


def test_wrong_version_or_foreign_files_are_named(tmp_path):
    def write_header(path, header):
        np.savez(path, __header__=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8))

    write_header(tmp_path / "future.npz", {"format": "tinygrad_dot", "version": 99, "payload": None})
    with pytest.raises(ValueError, match="format version 99.*upgrade"):
        tio.load(tmp_path / "future.npz")
    write_header(tmp_path / "other.npz", {"format": "something-else", "version": 1, "payload": None})
    with pytest.raises(ValueError, match="not a tinygrad_dot file"):
        tio.load(tmp_path / "other.npz")
    np.savez(tmp_path / "plain.npz", x=np.ones(2))
    with pytest.raises(ValueError, match="no __header__"):
        tio.load(tmp_path / "plain.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError, match="not a tinygrad_dot file .it is a text file"):
        tio.load(tmp_path / "text.npz")
    (tmp_path / "data.csv").write_text("a,b,y\n1,2,0\n")  # once leaked NumPy's "allow_pickle" advice
    with pytest.raises(ValueError, match=r"^'.*data.csv' is not a tinygrad_dot file \(it is a text file") as info:
        tio.load(tmp_path / "data.csv")
    assert "pickle" not in str(info.value)
    np.save(tmp_path / "one.npy", np.ones(2))
    with pytest.raises(ValueError, match="not a tinygrad_dot file .it is a single-array .npy file"):
        tio.load(tmp_path / "one.npy")
    np.savez(tmp_path / "objects.npz", x=np.array([{}], dtype=object))
    with pytest.raises(ValueError, match="not a tinygrad_dot file .it holds pickled Python objects") as info:
        tio.load(tmp_path / "objects.npz")
    assert "allow_pickle" not in str(info.value)
    with pytest.raises(ValueError, match="is a directory"):
        tio.load(tmp_path)
    with pytest.raises(FileNotFoundError):
        tio.load(tmp_path / "missing.npz")


def test_pickled_content_is_never_executed(tmp_path):
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    header = np.frombuffer(json.dumps({"format": "tinygrad_dot", "version": 1, "kind": "object",
                                       "payload": {"array": "a0"}}).encode(), dtype=np.uint8)
    obj = np.empty(1, dtype=object)
    obj[0] = Payload()
    np.savez(tmp_path / "evil.npz", __header__=header, a0=obj)
    with pytest.raises(ValueError):
        tio.load(tmp_path / "evil.npz")
    assert not marker.exists()


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(rng, tmp_path, monkeypatch):
    target = tmp_path / "model.npz"
    tio.save({"v": 1}, target)
    original = target.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        tio.save({"v": 2}, target)
    assert target.read_bytes() == original
    assert os.listdir(tmp_path) == ["model.npz"]


def test_wrong_kind_is_refused(tmp_path):
    tio.save({"v": 1}, tmp_path / "f.npz")
    with pytest.raises(ValueError, match="holds a saved state dict .written by td.save., not a model; read it with td.load"):
        tio.load(tmp_path / "f.npz", kind="model")
    tio.save(td.zeros(2), tmp_path / "t.npz")
    with pytest.raises(ValueError, match="holds a saved tensor .written by td.save., not a model"):
        tio.load(tmp_path / "t.npz", kind="model")


def test_saved_files_get_the_usual_permissions(tmp_path):
    """Atomic writes go through mkstemp (mode 0600); the result must be readable
    by others as a plain open() would make it (0666 less the umask)."""
    import os
    import stat

    mask = os.umask(0o022)
    try:
        path = tmp_path / "t.npz"
        td.save(td.ones(2), path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    finally:
        os.umask(mask)


def test_save_and_load_through_a_binary_stream(rng, tmp_path):
    # torch.save(obj, buffer) / torch.load(buffer): a BytesIO or an open file
    import io

    state = sample_state(rng)
    buffer = io.BytesIO()
    tio.save(state, buffer)
    buffer.seek(0)
    assert_same(state, tio.load(buffer, map_location="cpu"))
    with open(tmp_path / "f.npz", "wb") as f:
        tio.save(state["weight"], f)
    with open(tmp_path / "f.npz", "rb") as f:
        assert_same(state["weight"], tio.load(f))
    with pytest.raises(ValueError, match="^the stream is not a tinygrad_dot file .the file is empty"):
        tio.load(io.BytesIO())
    with pytest.raises(ValueError, match="^the stream is not a readable tinygrad_dot file"):
        tio.load(io.BytesIO(buffer.getvalue()[:200]))
    with pytest.raises(TypeError, match="binary mode"):
        tio.load(io.StringIO("PK"))
