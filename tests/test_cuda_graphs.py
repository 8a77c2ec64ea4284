"""CUDA graphs (td.cuda.graph, td.cuda.CUDAGraph): capture one training step, replay
it on new data copied into static tensors, and get what the step gives eagerly, bit
for bit. CI runs them on "emu" (the capture records the step's array work and kernel
launches); the same tests on "cuda" carry the gpu marker."""
import numpy as np
import pytest

import tinygrad_dot as td
from tinygrad_dot.runtime import recording

from conftest import graphed_losses

F = td.nn.functional
EMU_AND_GPU = ["emu", pytest.param("cuda", marks=pytest.mark.gpu)]


@pytest.fixture(autouse=True)
def no_capture_leaks():
    yield
    assert recording.state() is None, "a test left a capture running"


def batches(seed=0, n=7, rows=16, features=10, classes=3):
    """Minibatches of float32 features and one-hot float32 targets of a linear rule."""
    rng = np.random.default_rng(seed)
    rule = rng.standard_normal((features, classes))
    xs = [rng.standard_normal((rows, features)).astype(np.float32) for _ in range(n)]
    return [(x, np.eye(classes, dtype=np.float32)[(x @ rule).argmax(axis=1)]) for x in xs]


def new_model(device):
    td.manual_seed(0)
    model = td.nn.Linear(10, 3).to(device)
    return model, td.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def train_step(model, opt, x, y):
    opt.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss


def eager_run(device, data):
    model, opt = new_model(device)
    losses = [train_step(model, opt, td.tensor(x, device=device), td.tensor(y, device=device)).numpy()
              for x, y in data]
    return np.array(losses), model.weight.numpy(), model.bias.numpy()


def graphed_run(device, data, warmup=2):
    """The PyTorch recipe: warm-up steps on the static tensors, capture one step, then
    copy_ each batch into the statics and replay."""
    model, opt = new_model(device)
    static_x, static_y = td.tensor(data[0][0], device=device), td.tensor(data[0][1], device=device)
    losses = []
    for x, y in data[:warmup]:
        static_x.copy_(td.tensor(x, device=device))
        static_y.copy_(td.tensor(y, device=device))
        losses.append(train_step(model, opt, static_x, static_y).numpy())
    g = td.cuda.CUDAGraph()
    before = model.weight.numpy()
    with td.cuda.graph(g, device=device):
        static_loss = train_step(model, opt, static_x, static_y)
    assert np.array_equal(model.weight.numpy(), before), "capturing ran the step (a capture only records)"
    for x, y in data[warmup:]:
        static_x.copy_(td.tensor(x, device=device))
        static_y.copy_(td.tensor(y, device=device))
        g.replay()
        losses.append(static_loss.numpy())
    return np.array(losses), model.weight.numpy(), model.bias.numpy()


@pytest.mark.parametrize("device", EMU_AND_GPU)
def test_a_captured_training_step_replays_what_eager_steps_give(device):
    """nn.Linear + cross_entropy + SGD with momentum: losses and parameters of the graphed
    run are those of the eager run, bit for bit (the same kernels on the same data)."""
    data = batches()
    eager, graphed = eager_run(device, data), graphed_run(device, data)
    assert eager[0][-1] < eager[0][0]  # it trains
    for e, g in zip(eager, graphed):
        np.testing.assert_array_equal(g, e)


def test_cross_entropy_with_class_indices_captures_on_emu():
    rng = np.random.default_rng(1)
    data = [(x, rng.integers(0, 3, len(x))) for x, _ in batches()]
    eager, graphed = eager_run("emu", data), graphed_run("emu", data)
    for e, g in zip(eager, graphed):
        np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("device", EMU_AND_GPU)
def test_static_outputs_follow_the_static_inputs(device):
    """Batched, broadcast and transposed products (the plan's compact copies, several
    launches' operands) and reductions: each replay recomputes them from the statics."""
    rng = np.random.default_rng(2)
    a = td.tensor(rng.standard_normal((2, 3, 9, 5)).astype(np.float32), device=device)
    b = td.tensor(rng.standard_normal((4, 5)).astype(np.float32), device=device)

    def work():
        return ((a @ b.T) * 2).sum(dim=(0, 1)), td.tanh(a).mean()

    work()  # warm-up: plans the products
    g = td.cuda.CUDAGraph()
    with td.cuda.graph(g, device=device):
        out, mean = work()
    for _ in range(3):
        new_a, new_b = rng.standard_normal(a.shape).astype(np.float32), rng.standard_normal(b.shape).astype(np.float32)
        a.copy_(td.tensor(new_a, device=device))
        b.copy_(td.tensor(new_b, device=device))
        g.replay()
        ref_out, ref_mean = work()
        np.testing.assert_array_equal(out.numpy(), ref_out.numpy())
        np.testing.assert_array_equal(mean.numpy(), ref_mean.numpy())
        np.testing.assert_allclose(out.numpy(), (2 * new_a @ new_b.T).sum(axis=(0, 1)), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("device", EMU_AND_GPU)
@pytest.mark.parametrize("kind", ["binary", "multinomial", "l1 (fista)", "no intercept"])
def test_logistic_regression_captures_its_evaluations(device, kind):
    """LogisticRegression(cuda_graph=True): the solver's loss-and-gradient evaluation is
    captured once and replayed; the fit is the eager fit's, bit for bit."""
    pytest.importorskip("sklearn", reason="td.models needs scikit-learn (the models extra)")
    rng = np.random.default_rng(3)
    X = rng.standard_normal((150, 6))
    w = rng.standard_normal((6, 3))
    y = (X @ w).argmax(axis=1) if kind == "multinomial" else (X @ w[:, 0] > 0).astype(int)
    params = {"binary": {}, "multinomial": {}, "l1 (fista)": {"penalty": "l1", "C": 0.3},
              "no intercept": {"fit_intercept": False}}[kind]
    eager = td.models.LogisticRegression(device=device, **params).fit(X, y)
    graphed = td.models.LogisticRegression(device=device, cuda_graph=True, **params).fit(X, y)
    np.testing.assert_array_equal(graphed.coef_, eager.coef_)
    np.testing.assert_array_equal(graphed.intercept_, eager.intercept_)
    assert graphed.n_iter_ == eager.n_iter_ and graphed.n_iter_[0] > 2
    assert graphed.get_params()["cuda_graph"] is True


def test_logistic_regression_refuses_a_graph_on_the_cpu():
    pytest.importorskip("sklearn", reason="td.models needs scikit-learn (the models extra)")
    X, y = np.random.default_rng(4).standard_normal((20, 3)), np.arange(20) % 2
    with pytest.raises(ValueError, match="cuda_graph=True.*'cuda'.*'emu'.*runs on 'cpu'"):
        td.models.LogisticRegression(cuda_graph=True).fit(X, y)


@pytest.mark.parametrize("kernel", ["auto", "cusparse"])
def test_a_sparse_product_replays_on_emu(kernel):
    """Our SpMM kernels and the SciPy stand-in for cuSPARSE are captured like the rest."""
    sp = pytest.importorskip("scipy.sparse", reason="the sparse reference comes from SciPy")
    from tinygrad_dot import gemm, spmm

    dispatch = spmm.dispatcher(gemm.dispatcher("emu").runtime)
    rng = np.random.default_rng(5)
    S = sp.random(40, 30, density=0.2, format="csr", random_state=1, dtype=np.float32)
    csr = [recording.device_array(a) for a in (S.indptr.astype(np.int32), S.indices.astype(np.int32), S.data)]
    dense = recording.device_array(rng.standard_normal((30, 5)).astype(np.float32))
    cache = {}
    dispatch.spmm(*csr, S.shape, dense, kernel=kernel, cache=cache)  # warm-up: the structure, the choice
    g = td.cuda.CUDAGraph()
    with td.cuda.graph(g, device="emu"):
        out = dispatch.spmm(*csr, S.shape, dense, kernel=kernel, cache=cache)
    new = rng.standard_normal((30, 5)).astype(np.float32)
    dense[...] = new
    g.replay()
    np.testing.assert_array_equal(out, dispatch.spmm(*csr, S.shape, dense, kernel=kernel, cache=cache))
    np.testing.assert_allclose(out, S @ new, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------- errors

@pytest.mark.parametrize("device", EMU_AND_GPU)
def test_a_product_not_warmed_up_is_refused(device):
    """A GEMM signature met first during the capture would be planned and autotuned
    (which synchronizes): a clear error saying to warm up, and nothing left capturing."""
    a = td.ones(7, 13, device=device)
    b = td.ones(13, 11, device=device)
    g = td.cuda.CUDAGraph()
    with pytest.raises(td.cuda.CaptureError, match=r"\(7, 13\) x \(13, 11\).*no plan yet.*[Ww]arm up"):
        with td.cuda.graph(g, device=device):
            a @ b
    with pytest.raises(RuntimeError, match="no capture yet"):
        g.replay()
    a @ b  # the warm-up
    with td.cuda.graph(g, device=device):
        out = a @ b
    g.replay()
    np.testing.assert_array_equal(out.numpy(), np.full((7, 11), 13, np.float32))


@pytest.mark.parametrize("read", [float, lambda t: t.item(), lambda t: t.numpy(), lambda t: t.tolist(),
                                  lambda t: bool(t > 0), repr],
                         ids=["float", "item", "numpy", "tolist", "bool", "repr"])
def test_host_reads_during_capture_are_refused(read):
    """On a GPU they would synchronize the capturing stream (CUDA invalidates the
    capture); on emu they raise at once, and the capture leaves the data as it was."""
    model, opt = new_model("emu")
    x, y = (td.tensor(v, device="emu") for v in batches()[0])
    train_step(model, opt, x, y)
    before = model.weight.numpy()
    g = td.cuda.CUDAGraph()
    with pytest.raises(td.cuda.CaptureError, match="during CUDA graph capture.*after g.replay"):
        with td.cuda.graph(g, device="emu"):
            loss = train_step(model, opt, x, y)
            read(loss)
    np.testing.assert_array_equal(model.weight.numpy(), before)
    with pytest.raises(RuntimeError, match="no capture yet"):
        g.replay()


def test_data_dependent_shapes_are_refused():
    """A boolean-mask selection's size depends on the data: a replay could not resize it."""
    x = td.tensor(np.arange(6.0, dtype=np.float32), device="emu")
    with pytest.raises(td.cuda.CaptureError, match="depends on the data"):
        with td.cuda.graph(td.cuda.CUDAGraph(), device="emu"):
            x[x > 2]


def test_replay_before_capture_and_after_reset():
    g = td.cuda.CUDAGraph()
    with pytest.raises(RuntimeError, match=r"replay\(\).*holds no capture yet.*td.cuda.graph"):
        g.replay()
    x = td.tensor(np.ones(4, np.float32), device="emu")
    with td.cuda.graph(g, device="emu"):
        y = x * 3
    with pytest.raises(RuntimeError, match="reset"):
        with td.cuda.graph(g, device="emu"):
            x * 4
    g.replay()
    assert y.numpy().tolist() == [3.0] * 4
    g.reset()
    assert g.device is None
    with pytest.raises(RuntimeError, match="was reset"):
        g.replay()
    with td.cuda.graph(g, device="emu"):  # a reset graph captures again
        z = x + 1
    x.copy_(td.tensor(np.full(4, 2, np.float32), device="emu"))
    g.replay()
    assert z.numpy().tolist() == [3.0] * 4 and "captured on emu" in repr(g)


@pytest.mark.parametrize("device", ["cpu", "CPU"])
def test_graphs_on_the_cpu_are_refused(device):
    with pytest.raises(ValueError, match="'cuda:N' or 'emu'.*'cpu'"):
        with td.cuda.graph(td.cuda.CUDAGraph(), device=device):
            pass
    with pytest.raises(ValueError, match="unknown device"):
        td.cuda.CUDAGraph().capture_begin("tpu")


def test_one_capture_at_a_time():
    g = td.cuda.CUDAGraph()
    with td.cuda.graph(g, device="emu"):
        with pytest.raises(RuntimeError, match="capturing emu already"):
            td.cuda.CUDAGraph().capture_begin("emu")


# ----------------------------------------------------------------- the emu arrays

def test_emu_arrays_outside_a_capture():
    """Every op on "emu" gives an EmuArray (what a capture can record); full reductions
    and integer indexing give 0-d arrays, as CuPy does; np.asarray stays a plain view."""
    x = td.tensor(np.arange(6, dtype=np.float32).reshape(2, 3), device="emu")
    results = [x * 2, x.sum(), x[1, 2], x.T, td.tanh(x), x.reshape(3, 2), x.max(dim=1)[1], x @ x.T,
               td.zeros(2, device="emu")]
    for t in results:
        assert type(t.array) is recording.EmuArray, t
    assert x.sum().array.shape == () and float(x.sum()) == 15.0 and x[1, 2].item() == 5.0
    assert type(x.numpy()) is np.ndarray and type(np.asarray(x.array)) is np.ndarray


def test_replaying_records_only_the_graph():
    """Work outside the capture is not replayed; work inside is, on the same buffers."""
    a = td.tensor(np.ones(3, np.float32), device="emu")
    b = a * 5  # before the capture
    g = td.cuda.CUDAGraph()
    with td.cuda.graph(g, device="emu"):
        a.add_(1)
    assert a.numpy().tolist() == [1.0] * 3  # capturing changed nothing
    g.replay()
    g.replay()
    assert a.numpy().tolist() == [3.0] * 3 and b.numpy().tolist() == [5.0] * 3


# ----------------------------------------------------------------- on a GPU only

@pytest.mark.gpu
def test_a_host_read_during_a_cuda_capture_is_a_capture_error():
    """CuPy's copy to the host fails inside stream capture; the graph says what was illegal,
    ends the capture, and the device works on afterwards."""
    model, opt = new_model("cuda")
    x, y = (td.tensor(v, device="cuda") for v in batches()[0])
    train_step(model, opt, x, y)
    g = td.cuda.CUDAGraph()
    with pytest.raises(td.cuda.CaptureError, match="host read"):
        with td.cuda.graph(g, device="cuda"):
            float(train_step(model, opt, x, y))
    assert np.isfinite(float(train_step(model, opt, x, y)))
    with pytest.raises(RuntimeError, match="no capture yet"):
        g.replay()


@pytest.mark.gpu
def test_emu_work_during_a_cuda_capture_is_refused():
    a = td.ones(3, device="emu")
    with pytest.raises(td.cuda.CaptureError, match="only cuda:0's work is captured"):
        with td.cuda.graph(td.cuda.CUDAGraph(), device="cuda"):
            a * 2


@pytest.mark.gpu
def test_a_cuda_graph_keeps_its_memory_until_reset():
    """Buffers allocated during the capture stay reserved for the graph (the pool does
    not hand them out again) until reset()."""
    import cupy

    x = td.ones(64, 64, device="cuda")
    (x @ x).sum()
    g = td.cuda.CUDAGraph()
    pool = cupy.get_default_memory_pool()
    with td.cuda.graph(g, device="cuda"):
        out = (x @ x).sum()
    held = pool.used_bytes()
    for _ in range(3):
        (x @ x).sum()  # eager work meanwhile gets other buffers
        g.replay()
        assert float(out) == 64.0 ** 3
    assert pool.used_bytes() >= held
    del out
    g.reset()
    assert pool.used_bytes() < held


def _adam_trainer(optimizer, **options):
    rng = np.random.default_rng(7)
    X, y = rng.standard_normal((32, 6)).astype(np.float32), rng.integers(0, 3, 32)
    td.manual_seed(0)
    layer = td.nn.Linear(6, 3, device="emu")
    opt = optimizer(layer.parameters(), lr=0.05, **options)
    x, t = td.tensor(X, device="emu"), td.tensor(y, device="emu")

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(layer(x), t)
        loss.backward()
        opt.step()
        return loss
    return layer, step


@pytest.mark.parametrize("optimizer", [td.optim.Adam, td.optim.AdamW])
def test_capturable_adam_replays_its_advancing_step_count(optimizer):
    """Adam(capturable=True) keeps its step count on the device: replays take steps 2, 3, ...
    with their own bias corrections, bit for bit the eager capturable run, and within
    rounding of the plain (host-counted) Adam."""
    layer, step = _adam_trainer(optimizer, capturable=True)
    eager = np.array([step().numpy() for _ in range(6)])
    eager_weight = layer.weight.numpy()
    _, plain_step = _adam_trainer(optimizer)
    plain = np.array([plain_step().numpy() for _ in range(6)])
    layer, step = _adam_trainer(optimizer, capturable=True)
    np.testing.assert_array_equal(graphed_losses(step, 6), eager)
    np.testing.assert_array_equal(layer.weight.numpy(), eager_weight)
    assert np.abs(plain - eager).max() < 1e-5 * np.abs(plain).max()


@pytest.mark.parametrize("optimizer,options,what", [(td.optim.Adam, {}, "capturable=True"),
                                                    (td.optim.AdamW, {}, "capturable=True"),
                                                    (td.optim.Adagrad, {"lr_decay": 0.1}, "lr_decay")])
def test_an_optimizer_counting_on_the_host_refuses_capture(optimizer, options, what):
    """Its step's numbers come from a Python counter a replay would never advance: an error
    naming the way out, not a silently frozen schedule."""
    _, step = _adam_trainer(optimizer, **options)
    step()
    with pytest.raises(td.cuda.CaptureError, match=what):
        with td.cuda.graph(td.cuda.CUDAGraph(), device="emu"):
            step()


def test_a_capturable_float16_adam_counts_past_2048():
    """The device-side step count is float32 for float16 parameters (PyTorch's rule): a float16
    count would stop at 2048 and freeze the bias correction there."""
    p = td.tensor(np.zeros(4, np.float16), requires_grad=True)
    opt = td.optim.Adam([p], capturable=True)
    for _ in range(2100):
        p.grad = td.tensor(np.full(4, 0.5, np.float16))
        opt.step()
    assert float(next(iter(opt.state.values()))["step"]) == 2100
