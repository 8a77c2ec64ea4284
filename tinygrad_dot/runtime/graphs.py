"""CUDA graphs: capture a step once, replay it without Python (``td.cuda.graph``,
``td.cuda.CUDAGraph``, in PyTorch's shape).

    g = td.cuda.CUDAGraph()
    with td.cuda.graph(g, device="cuda"):      # or device="emu"
        static_loss = step(static_x, static_y)  # recorded, not run
    for x, y in batches:
        static_x.copy_(x); static_y.copy_(y)
        g.replay()                              # the whole step, on the same buffers
        print(float(static_loss))

Warm up before capturing (run the step a few times): a capture cannot plan or
autotune a new GEMM signature (tuning times kernels, which synchronizes), and an
optimizer's state (a momentum buffer) must exist so that the captured step is a
regular one. Host reads (``float(t)``, ``.item()``, ``.numpy()``, ``.tolist()``)
are errors during a capture; read static outputs after ``replay()``.

On "cuda:N", CuPy's stream capture: the work is captured on a side stream that
first waits for the current one; a replay launches the graph on that stream
between the same two waits. Every buffer allocated during the capture stays
alive, reserved for the graph, until ``reset()`` (PyTorch's private pool).

On "emu", the same API over recording (tinygrad_dot.runtime.recording): the
capture records every array operation and kernel launch of the step (running
them, then putting back what they overwrote, so that, as on a GPU, capturing
changes nothing) and a replay runs the records again, bit for bit what the step
computes eagerly.

One capture at a time per process; only the graph's device is captured (work on
other devices runs once, while capturing, as in PyTorch).
"""
from __future__ import annotations

import contextlib

from . import recording
from .recording import CaptureError

__all__ = ["CUDAGraph", "graph", "CaptureError", "capturing"]

_capturing: set = set()  # devices with a capture in progress ("emu", "cuda:0", ...)


def capturing(device: str) -> bool:
    """A graph is capturing this device's work now (the GEMM dispatch must not plan)."""
    return device in _capturing


def not_warmed_up(device: str, a, b, kernel) -> CaptureError:
    """The error of a GEMM signature met for the first time during a capture."""
    return CaptureError(
        f"a matmul of shapes {tuple(a.shape)} x {tuple(b.shape)} ({a.dtype}, strides {a.strides} and "
        f"{b.strides}, kernel={kernel!r}) on {device} has no plan yet, and a CUDA graph capture cannot make one "
        "(choosing a kernel autotunes, which synchronizes the device). Warm up before capturing: run the "
        "captured code once or a few times (e.g. a few training steps on the static tensors), as PyTorch asks")


def graph_device(device):
    """The canonical name and backend of a device graphs work on, or a clear error."""
    from ..backends import canonical_device, get_backend

    name = canonical_device("cuda" if device is None else device)
    if name == "cpu":
        raise ValueError("CUDA graphs capture work on 'cuda:N' or 'emu' (CUDA emulated on the CPU); device 'cpu' "
                         "runs NumPy eagerly and has nothing to capture: drop the graph there, or use "
                         "device='emu' to try the capture on the CPU")
    return name, get_backend(name)


class CUDAGraph:
    """A captured sequence of a device's work, replayed with ``replay()``.

    Capture with ``with td.cuda.graph(g, device=...)`` (or ``capture_begin`` /
    ``capture_end``); ``reset()`` frees what the capture holds, after which the
    graph can capture again."""

    def __init__(self):
        self.device = None   # the captured device's name
        self._replay = None  # runs the captured work
        self._holds = None   # what the captured work needs alive (buffers, the CUDA graph)
        self._capture = None  # the capture in progress
        self._was_reset = False

    def capture_begin(self, device=None) -> None:
        if self._capture is not None or self._replay is not None:
            raise RuntimeError("this CUDAGraph holds a capture already; call reset() before capturing again")
        name, backend = graph_device(device)
        if _capturing or recording.state() is not None:
            raise RuntimeError(f"a CUDA graph is capturing {', '.join(sorted(_capturing))} already: one capture "
                               "at a time")
        capture = _EmuCapture() if name == "emu" else _CudaCapture(backend)
        capture.begin()
        _capturing.add(name)
        self._capture, self.device = capture, name

    def capture_end(self) -> None:
        self._end(failed=False)

    def _end(self, failed: bool) -> None:
        capture, self._capture = self._capture, None
        if capture is None:
            raise RuntimeError("capture_end() without capture_begin()")
        _capturing.discard(self.device)
        replay = capture.end(failed)  # an aborted capture ends too, and holds nothing after
        if failed:
            self.device = None
        else:
            self._replay, self._holds, self._was_reset = replay, capture, False

    def replay(self) -> None:
        """Run the captured work again, on the buffers it captured."""
        if self._replay is None:
            state = "is capturing" if self._capture is not None else \
                "was reset" if self._was_reset else "holds no capture yet"
            raise RuntimeError(f"CUDAGraph.replay(): the graph {state}; capture a step first with "
                               "`with td.cuda.graph(g, device=...)`")
        self._replay()

    def reset(self) -> None:
        """Forget the capture and free what it holds (on a GPU, its private memory)."""
        if self._capture is not None:
            raise RuntimeError("CUDAGraph.reset() during its capture; end the capture first")
        self._replay, self._holds, self.device = None, None, None
        self._was_reset = True

    def __repr__(self) -> str:
        what = f"captured on {self.device}" if self._replay is not None else \
            "capturing" if self._capture is not None else "empty"
        return f"<td.cuda.CUDAGraph {what}>"


class graph:
    """``with td.cuda.graph(g, device="cuda"):`` captures the block's work on the device
    into g (PyTorch's ``torch.cuda.graph``; ``device`` is ours, as td has no current
    device: "cuda", "cuda:N" or "emu"). An exception in the block abandons the capture."""

    def __init__(self, cuda_graph: CUDAGraph, device=None):
        if not isinstance(cuda_graph, CUDAGraph):
            raise TypeError(f"td.cuda.graph takes a td.cuda.CUDAGraph, got {type(cuda_graph).__name__}")
        self.cuda_graph, self.device = cuda_graph, device

    def __enter__(self):
        self.cuda_graph.capture_begin(self.device)
        return self.cuda_graph

    def __exit__(self, kind, error, tb):
        g = self.cuda_graph
        if kind is None:
            g.capture_end()
            return False
        g._end(failed=True)
        if _is_capture_violation(error):
            raise CaptureError(f"the CUDA graph capture failed: {error}. A host read (float(t), .item(), "
                               ".numpy(), .tolist(), printing) or a synchronization is illegal during stream "
                               "capture; read static outputs after g.replay()") from error
        return False


def _is_capture_violation(error) -> bool:
    """CUDA's refusal of an operation during stream capture, as CuPy raises it (runtime:
    cudaErrorStreamCapture..., driver: CUDA_ERROR_STREAM_CAPTURE_...)."""
    return type(error).__name__ in ("CUDARuntimeError", "CUDADriverError") and "capture" in str(error).lower()


class _EmuCapture:
    """A capture on "emu": a recording of the step's array work and kernel launches."""

    def begin(self) -> None:
        self.recording = recording.Recording()
        recording.set_state(self.recording)

    def end(self, failed: bool):
        recording.set_state(None)
        steps = self.recording.finish()  # also after a failure: the prior contents come back
        if failed:
            self.recording = None
            return None
        return lambda: _replay_emu(steps)


def _replay_emu(steps) -> None:
    if recording.state() is not None:
        raise RuntimeError("CUDAGraph.replay() during a capture: replay before or after capturing")
    recording.replay(steps)


class _CudaCapture:
    """A capture on "cuda:N" through CuPy's stream capture, on a side stream."""

    def __init__(self, backend):
        self.cupy = cupy = backend.xp
        self.device = backend._device  # cupy.cuda.Device
        with self.device:
            self.stream = cupy.cuda.Stream(non_blocking=True)
        self.memory = []  # every allocation of the capture: the graph's private pool, until reset()
        self.graph = None

    def _malloc(self, size: int):
        # Served by the default pool but never handed back while the graph lives: a replay
        # writes these addresses, so nothing else may get them.
        pointer = self.cupy.get_default_memory_pool().malloc(size)
        self.memory.append(pointer)
        return pointer

    def begin(self) -> None:
        cuda = self.cupy.cuda
        self._scope = contextlib.ExitStack()
        self._scope.enter_context(self.device)
        self.stream.wait_event(cuda.get_current_stream().record())  # the capture follows queued work
        self._scope.enter_context(self.stream)  # the side stream becomes current: every launch goes there
        self._scope.enter_context(cuda.using_allocator(self._malloc))
        try:
            self.stream.begin_capture()  # CuPy's default mode: relaxed (the pool may cudaMalloc)
        except BaseException:
            self._scope.close()
            raise
        recording.set_state(recording.Refusal(f"cuda:{self.device.id}"))  # emu work would not be captured

    def end(self, failed: bool):
        recording.set_state(None)
        try:
            captured = self.stream.end_capture()
        except Exception:
            if not failed:
                raise
            captured = None  # the capture's own error says more
        finally:
            self._scope.close()
        if failed:
            self.memory.clear()
            return None
        self.graph = captured
        return self._launch

    def _launch(self) -> None:
        cuda = self.cupy.cuda
        with self.device:
            current = cuda.get_current_stream()
            self.stream.wait_event(current.record())  # after the current stream's work (copy_ into statics)
            self.graph.launch(self.stream)
            current.wait_event(self.stream.record())  # and before what comes next on it
