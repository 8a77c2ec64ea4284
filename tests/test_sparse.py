"""Sparse (CSR) tensors: building them (arrays, SciPy, dense), products with dense tensors
and their gradients against float64 NumPy references, row slicing for minibatches, the
transpose, moves between devices ("cpu", "emu"; "cuda" where lent), the backend primitive
spmm, and the errors for what is not supported (each naming the layout)."""
import pickle

import numpy as np
import pytest

sp = pytest.importorskip("scipy.sparse", reason="sparse products on the CPU use SciPy")

import tinygrad_dot as td  # noqa: E402
from tinygrad_dot.backends import get_backend  # noqa: E402

from conftest import rel_error  # noqa: E402

DEVICES = ["cpu", "emu"]


def random_csr(rng, M, K, density, dtype=np.float64, empty_rows=True):
    """A random CSR matrix with some empty rows and one long row (skewed lengths)."""
    S = sp.random(M, K, density=density, format="lil", dtype=np.float64, random_state=rng)
    if empty_rows and M > 3:
        for r in rng.choice(M, size=M // 4, replace=False):
            S[r] = 0
    if M > 1:
        S[M // 2, rng.choice(K, size=max(1, K // 2), replace=False)] = rng.standard_normal(max(1, K // 2))
    return sp.csr_matrix(S, dtype=dtype)


# ----------------------------------------------------------------- building


def test_sparse_csr_tensor_from_arrays_matches_scipy(rng):
    A = random_csr(rng, 9, 7, 0.3)
    S = td.sparse_csr_tensor(A.indptr.astype(np.int64), A.indices.astype(np.int64), A.data, (9, 7))
    assert S.layout is td.sparse_csr and S.is_sparse and not td.ones(2).is_sparse
    assert td.ones(2).layout is td.strided and S.shape == (9, 7) and S.size() == td.Size([9, 7])
    assert S.dtype == np.float64 and S.numel() == 63 and len(S) == 9 and S.device == "cpu"
    np.testing.assert_array_equal(S.to_dense().numpy(), A.toarray())
    np.testing.assert_array_equal(S.crow_indices().numpy(), A.indptr)
    np.testing.assert_array_equal(S.col_indices().numpy(), A.indices)
    np.testing.assert_array_equal(S.values().numpy(), A.data)
    assert "layout=td.sparse_csr" in repr(S) and "nnz=" in repr(S)


@pytest.mark.parametrize("kind", [sp.csr_matrix, sp.csr_array, sp.csc_matrix, sp.coo_array, sp.lil_matrix])
def test_from_scipy_any_format(rng, kind):
    A = random_csr(rng, 12, 5, 0.4)
    S = td.tensor(kind(A))
    assert S.layout is td.sparse_csr
    np.testing.assert_array_equal(S.to_dense().numpy(), A.toarray())
    np.testing.assert_array_equal(S.to_scipy().toarray(), A.toarray())


def test_scipy_csr_index_arrays_are_shared_not_copied(rng):
    A = random_csr(rng, 30, 20, 0.2)
    S = td.tensor(A)
    assert S.array.indptr is A.indptr and S.array.indices is A.indices and S.values().array is A.data
    back = S.to_scipy()
    assert np.shares_memory(back.indices, A.indices) and np.shares_memory(back.indptr, A.indptr)
    # int64 index arrays stay int64 (and shared) as well
    B = A.copy()  # (SciPy's constructor would narrow int64 indices that fit: set them after)
    B.indices, B.indptr = A.indices.astype(np.int64), A.indptr.astype(np.int64)
    T = td.tensor(B)
    assert T.array.indices.dtype == np.int64 and np.shares_memory(T.array.indices, B.indices)


def test_dense_to_sparse_csr_and_back(rng):
    dense = rng.standard_normal((6, 8)) * (rng.random((6, 8)) < 0.3)
    x = td.tensor(dense, requires_grad=True)
    S = x.to_sparse_csr()
    assert S.layout is td.sparse_csr and S.array.nnz == np.count_nonzero(dense)
    np.testing.assert_array_equal(S.to_dense().numpy(), dense)
    assert x.to_dense() is x
    (S.to_dense() * 3).sum().backward()  # the values keep their gradient to x
    np.testing.assert_array_equal(x.grad.numpy(), 3.0 * (dense != 0))


@pytest.mark.parametrize("device", DEVICES)
def test_transpose_to_sparse_csr_without_densifying(rng, device):
    A = random_csr(rng, 14, 9, 0.3)
    S = td.tensor(A, device=device, requires_grad=True)
    T = S.T.to_sparse_csr()
    assert T.layout is td.sparse_csr and T.shape == (9, 14) and T.array.nnz == A.nnz
    expected = A.T.tocsr()
    expected.sort_indices()
    np.testing.assert_array_equal(T.crow_indices().numpy(), expected.indptr)
    np.testing.assert_array_equal(T.col_indices().numpy(), expected.indices)
    np.testing.assert_array_equal(T.to_dense().numpy(), A.T.toarray())
    D = rng.standard_normal((14, 2))
    (T @ td.tensor(D, device=device)).sum().backward()  # gradient back to the original values
    rows = np.repeat(np.arange(14), np.diff(A.indptr))
    assert rel_error(S.grad.values().numpy(), D.sum(axis=1)[rows]) < 1e-13


def test_dtype_cast_and_pickle(rng):
    A = random_csr(rng, 10, 6, 0.3)
    S = td.tensor(A, dtype=td.float32)
    assert S.dtype == np.float32 and S.double().dtype == np.float64 and S.to(td.float64).layout is td.sparse_csr
    again = pickle.loads(pickle.dumps(S))
    assert again.layout is td.sparse_csr and not again.requires_grad
    import copy

    kept = copy.deepcopy(td.tensor(A, requires_grad=True).T)
    assert kept.requires_grad and kept.layout is td.sparse_csc
    np.testing.assert_array_equal(again.to_dense().numpy(), S.to_dense().numpy())


def test_bad_arrays_are_refused_with_what_is_wrong():
    with pytest.raises(ValueError, match="do not describe a 2 x 3 CSR"):
        td.sparse_csr_tensor([0, 1], [0], [1.0], (2, 3))
    with pytest.raises(ValueError, match=r"column indices must lie in \[0, 3\)"):
        td.sparse_csr_tensor([0, 1, 1], [5], [1.0], (2, 3))
    with pytest.raises(TypeError, match="1-D integer"):
        td.sparse_csr_tensor([0.0, 1.0, 1.0], [0], [1.0], (2, 3))
    with pytest.raises(TypeError, match="td.tensor"):
        td.Tensor(sp.eye(3, format="csr"))


# ----------------------------------------------------------------- products and gradients


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-13), (np.float32, 1e-5)])
def test_sparse_times_dense_values_and_gradients(rng, device, dtype, tol):
    M, K, N = 37, 23, 5
    A = random_csr(rng, M, K, 0.15)
    D = rng.standard_normal((K, N))
    G = rng.standard_normal((M, N))
    S = td.tensor(A.astype(dtype), device=device, requires_grad=True)
    d = td.tensor(D.astype(dtype), device=device, requires_grad=True)
    out = S @ d
    assert out.layout is td.strided and out.device == device and out.dtype == dtype
    assert rel_error(out.numpy(), A @ D) < tol
    assert rel_error(td.sparse.mm(S, d).numpy(), A @ D) < tol
    out.backward(td.tensor(G.astype(dtype), device=device))
    assert rel_error(d.grad.numpy(), A.T @ G) < tol  # dD = S^T G
    # dvalues: (G D^T) at the stored positions, and nothing else
    rows = np.repeat(np.arange(M), np.diff(A.indptr))
    expected = (G @ D.T)[rows, A.indices]
    assert S.grad.layout is td.sparse_csr and S.grad.shape == (M, K)
    assert rel_error(S.grad.values().numpy(), expected) < tol


@pytest.mark.parametrize("device", DEVICES)
def test_dense_times_transpose_and_transposed_products(rng, device):
    M, K, N = 19, 31, 4
    A = random_csr(rng, M, K, 0.2)
    S = td.tensor(A, device=device, requires_grad=True)
    E = rng.standard_normal((N, K))
    e = td.tensor(E, device=device, requires_grad=True)
    assert S.T.layout is td.sparse_csc and S.T.shape == (K, M) and S.T.T.layout is td.sparse_csr
    out = e @ S.T  # (N, M), through the transpose: no copy of S
    assert rel_error(out.numpy(), E @ A.T.toarray()) < 1e-13
    assert rel_error(td.matmul(e, S.t()).numpy(), E @ A.T) < 1e-13
    G = rng.standard_normal((N, M))
    out.backward(td.tensor(G, device=device))
    assert rel_error(e.grad.numpy(), G @ A) < 1e-13
    rows = np.repeat(np.arange(M), np.diff(A.indptr))
    assert rel_error(S.grad.values().numpy(), (G.T @ E)[rows, A.indices]) < 1e-13
    # S^T @ D and D @ S, vectors included
    F = rng.standard_normal((M, 3))
    assert rel_error((S.T @ td.tensor(F, device=device)).numpy(), A.T @ F) < 1e-13
    assert rel_error((td.tensor(F.T, device=device) @ S).numpy(), F.T @ A) < 1e-13
    v = rng.standard_normal(K)
    assert rel_error((S @ td.tensor(v, device=device)).numpy(), A @ v) < 1e-13
    assert rel_error(S.T.to_dense().numpy(), A.T.toarray()) < 1e-15


def test_gradient_through_a_model_matches_dense(rng):
    """A logistic loss on sparse X: the same weight gradient as on the dense copy."""
    A = random_csr(rng, 50, 40, 0.1)
    y = td.tensor((rng.random((50, 1)) < 0.5).astype(np.float64))
    grads = []
    for X in (td.tensor(A), td.tensor(A.toarray())):
        w = td.tensor(rng.standard_normal((40, 1)) if not grads else w0, requires_grad=True)
        w0 = w.detach().numpy()
        z = X @ w
        loss = (td.log1p(td.exp(z)) - y * z).mean()
        loss.backward()
        grads.append(w.grad.numpy())
    assert rel_error(grads[0], grads[1]) < 1e-13


def test_backend_spmm_primitive(rng):
    A = random_csr(rng, 25, 11, 0.3)
    D, G = rng.standard_normal((11, 6)), rng.standard_normal((25, 6))
    for device in DEVICES:
        b = get_backend(device)
        args = [b.asarray(a) for a in (A.indptr, A.indices, A.data)]
        assert rel_error(b.to_numpy(b.spmm(*args, A.shape, b.asarray(D))), A @ D) < 1e-13
        out = b.spmm(*args, A.shape, b.asarray(G), transpose_sparse=True, cache={})
        assert rel_error(b.to_numpy(out), A.T @ G) < 1e-13
        assert b.is_array(out)


# ----------------------------------------------------------------- rows (minibatches)


@pytest.mark.parametrize("device", DEVICES)
def test_row_slices_and_index_arrays(rng, device):
    A = random_csr(rng, 40, 15, 0.2)
    S = td.tensor(A, device=device)
    D = rng.standard_normal((15, 2))
    d = td.tensor(D, device=device)
    for index in (slice(3, 17), slice(None, None, 3), slice(30, 100), slice(5, 5)):
        part = S[index]
        assert part.layout is td.sparse_csr and part.shape == A[index].shape
        np.testing.assert_array_equal(part.to_dense().numpy(), A[index].toarray())
    order = rng.permutation(40)[:13]
    for index in (order, list(order), td.tensor(order, device=device), order - 40):
        np.testing.assert_array_equal(S[index].to_dense().numpy(), A[order].toarray())
    mask = rng.random(40) < 0.5
    np.testing.assert_array_equal(S[mask].to_dense().numpy(), A[np.nonzero(mask)[0]].toarray())
    assert rel_error((S[order] @ d).numpy(), A[order] @ D) < 1e-13
    assert S[2:9].array.indices.base is not None or device != "cpu"  # a contiguous slice is a view


def test_row_slice_gradients_reach_the_original_values(rng):
    A = random_csr(rng, 20, 9, 0.3)
    S = td.tensor(A, requires_grad=True)
    D = rng.standard_normal((9, 3))
    rows = np.array([4, 10, 4])
    (S[rows] @ td.tensor(D)).sum().backward()
    dense_grad = np.zeros((20, 9))
    for r in rows:
        dense_grad[r] += D.sum(axis=1)  # d sum(S[r] D) / d S[r, c] = sum_n D[c, n]
    expected = dense_grad[np.repeat(np.arange(20), np.diff(A.indptr)), A.indices]
    assert rel_error(S.grad.values().numpy(), expected) < 1e-13


# ----------------------------------------------------------------- what is not supported


def test_unsupported_operations_name_the_layout(rng):
    S = td.tensor(random_csr(rng, 5, 4, 0.5))
    d = td.ones(4, 4, dtype=td.float64)
    for attempt in (lambda: S + 1, lambda: S * d, lambda: td.exp(S), lambda: S.sum(), lambda: S.reshape(20),
                    lambda: S.numpy(), lambda: S.T[0:2], lambda: S[0], lambda: -S):
        with pytest.raises(TypeError, match="td.sparse_c"):
            attempt()
    with pytest.raises(TypeError, match="sparse @ sparse"):
        S @ S.T
    with pytest.raises(TypeError, match="different dtypes"):
        S @ td.ones(4, 2)
    with pytest.raises(ValueError, match="not aligned"):
        S @ td.ones(5, 2, dtype=td.float64)
    with pytest.raises(RuntimeError, match="one device"):
        S @ td.ones(4, 2, dtype=td.float64, device="emu")


@pytest.mark.gpu
def test_cupyx_round_trip_and_products_on_the_gpu(rng):
    import cupy
    import cupyx.scipy.sparse as csp

    A = random_csr(rng, 300, 200, 0.05)
    G = csp.csr_matrix(A)
    S = td.tensor(G)
    assert S.device == "cuda:0" and S.layout is td.sparse_csr
    D = rng.standard_normal((200, 16))
    assert rel_error((S @ td.tensor(D, device="cuda")).numpy(), A @ D) < 1e-12
    back = S.to_cupyx()
    assert cupy.shares_memory(back.indices, G.indices)
    assert rel_error(td.tensor(A).to("cuda").to_dense().numpy(), A.toarray()) == 0
