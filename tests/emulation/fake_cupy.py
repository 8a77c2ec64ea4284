"""A stand-in CuPy for driving tinygrad_dot.gemm.matmul end to end on the CPU:
its arrays are host arrays, its events read the host clock, and the kernels it
launches are the emulated ones (tests/emulation/emulator.py). Everything from
operand checks to the autotuner and its cache runs as on a GPU."""
from __future__ import annotations

import sys
import time
import types

import numpy as np

from tests.emulation.emulator import emulated_raw_kernel


class FakeDevice:
    id = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class FakeDeviceArray(np.ndarray):
    """A host array that looks like a cupy.ndarray to tinygrad_dot.gemm."""

    @property
    def data(self):
        return type("Ptr", (), {"ptr": self.ctypes.data})()

    @property
    def device(self):
        return FakeDevice()


def on_device(x: np.ndarray) -> FakeDeviceArray:
    return x.view(FakeDeviceArray)


class _Event:
    def record(self):
        self.t = time.perf_counter()

    def synchronize(self):
        pass


def install(monkeypatch, get_kernel=None):
    """Put the stand-in in place for one test: sys.modules["cupy"], an "emulated"
    device (cc 90, key "emu"), emulated kernels (or get_kernel(cfg, dtype_str,
    trans_a, trans_b), e.g. one that fails on purpose), no precompiling, and a
    fresh autotuner. Returns the fake module."""
    from tinygrad_dot import gemm
    from tinygrad_dot.gemm import compile as gemm_compile

    cuda = types.SimpleNamespace(Event=_Event, get_elapsed_time=lambda a, b: (b.t - a.t) * 1e3)
    fake = types.SimpleNamespace(
        ndarray=FakeDeviceArray, cuda=cuda, broadcast_to=np.broadcast_to,
        empty=lambda shape, dtype: on_device(np.full(shape, np.nan, dtype)),  # poisoned: a skipped element shows
        ascontiguousarray=lambda x: on_device(np.ascontiguousarray(x)))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(gemm, "device_info", lambda i: dict(name="emulated", cc=90, sm_count=2, key="emu"))
    kernel = get_kernel or emulated_raw_kernel
    monkeypatch.setattr(gemm_compile, "get_kernel", lambda cfg, dt, ta, tb, cc, dev=0: kernel(cfg, dt, ta, tb))
    monkeypatch.setattr(gemm_compile, "precompile", lambda variants, cc: None)
    monkeypatch.setattr(gemm, "_autotuner", None)
    return fake
