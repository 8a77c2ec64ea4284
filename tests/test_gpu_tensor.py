"""The op layer on device='cuda' against float64 NumPy. Skipped, with the
reason, where no CUDA GPU is visible (see conftest.py)."""
import numpy as np
import pytest

import tinygrad_dot as td
from conftest import rel_error

pytestmark = pytest.mark.gpu

ODD_SIZES = [1, 7, 33, 127, 129, 1000]


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("m,k,n", [(s, s, s) for s in ODD_SIZES] + [(1, 1000, 7), (129, 1, 33), (1000, 33, 1)])
@pytest.mark.parametrize("layout", ["NN", "NT", "TN", "TT"])
def test_matmul_on_cuda_matches_float64(m, k, n, layout, dtype, tol, rng):
    a = rng.standard_normal((k, m) if layout[0] == "T" else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if layout[1] == "T" else (k, n)).astype(dtype)
    ta, tb = td.tensor(a, device="cuda"), td.tensor(b, device="cuda")
    ta = ta.T if layout[0] == "T" else ta
    tb = tb.T if layout[1] == "T" else tb
    out = (ta @ tb).numpy()
    a64 = a.astype(np.float64).T if layout[0] == "T" else a.astype(np.float64)
    b64 = b.astype(np.float64).T if layout[1] == "T" else b.astype(np.float64)
    assert rel_error(out, a64 @ b64) < tol


@pytest.mark.parametrize("shapes", [((4, 33, 7), (4, 7, 129)), ((3, 1, 5, 9), (2, 9, 6)), ((129,), (5, 129, 3))], ids=str)
def test_batched_matmul_on_cuda(shapes, rng):
    a = rng.standard_normal(shapes[0]).astype(np.float32)
    b = rng.standard_normal(shapes[1]).astype(np.float32)
    out = td.matmul(td.tensor(a, device="cuda"), td.tensor(b, device="cuda")).numpy()
    assert rel_error(out, np.matmul(a.astype(np.float64), b.astype(np.float64))) < 1e-5


def test_autograd_on_cuda_matches_cpu(rng):
    x = rng.standard_normal((65, 33)).astype(np.float32)
    w = rng.standard_normal((33, 7)).astype(np.float32)
    grads = {}
    for device in ("cpu", "cuda"):
        tw = td.tensor(w, device=device, requires_grad=True)
        loss = ((td.tensor(x, device=device) @ tw).sigmoid() ** 2).mean()
        loss.backward()
        assert tw.grad.device == loss.device
        grads[device] = tw.grad.numpy()
    assert rel_error(grads["cuda"], grads["cpu"]) < 1e-5


def test_to_and_from_cuda_carries_gradients(rng):
    x = td.tensor(rng.standard_normal(5), requires_grad=True)
    y = x.cuda()
    assert y.device == "cuda:0"
    (y * 3).sum().backward()
    assert x.grad.device == "cpu"
    np.testing.assert_allclose(x.grad.numpy(), 3.0)


def test_mixed_devices_name_both():
    with pytest.raises(RuntimeError, match=r"cpu.*cuda:0|cuda:0.*cpu"):
        td.ones(2) + td.ones(2, device="cuda")


def test_cublas_reference_spelling(rng):
    a = rng.standard_normal((33, 65)).astype(np.float32)
    ours = td.matmul(td.tensor(a, device="cuda"), td.tensor(a.T.copy(), device="cuda"))
    ref = td.matmul(td.tensor(a, device="cuda"), td.tensor(a.T.copy(), device="cuda"), kernel="cublas")
    assert rel_error(ours.numpy(), ref.numpy()) < 1e-5
