"""L-BFGS: the functional minimiser against closed forms and SciPy's L-BFGS-B, the
strong-Wolfe line search against its own conditions, and td.optim.LBFGS against
torch.optim.LBFGS (when PyTorch is installed)."""
import math

import numpy as np
import pytest

import tinygrad_dot as td
import tinygrad_dot.nn.functional as F
import tinygrad_dot.optim as optim
from tinygrad_dot.optim.lbfgs import LBFGS, _Trial, minimize_lbfgs, strong_wolfe


# ----------------------------------------------------------------- objectives

def rosenbrock(x):
    a, b = x[:-1], x[1:]
    f = float(np.sum(100.0 * (b - a * a) ** 2 + (1.0 - a) ** 2))
    g = np.zeros_like(x)
    g[:-1] = -400.0 * a * (b - a * a) - 2.0 * (1.0 - a)
    g[1:] += 200.0 * (b - a * a)
    return f, g


def random_quadratic(rng, n, condition=100.0):
    """f = x'Ax/2 - b'x with A symmetric positive definite of the given condition number."""
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    a = (q * np.geomspace(1.0, condition, n)) @ q.T
    b = rng.standard_normal(n)
    return a, b, lambda x: (float(x @ (a @ x) / 2 - b @ x), a @ x - b)


def logistic_problem(rng, n=2000, d=20, alpha=1.0):
    """L2-regularised logistic loss (scikit-learn's C = 1/alpha form), labels from a noisy linear model."""
    x = rng.standard_normal((n, d))
    w_true = rng.standard_normal(d) / math.sqrt(d) * 3
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-x @ w_true))).astype(np.float64)

    def fun(w):
        z = x @ w
        f = np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * alpha * (w @ w)
        g = x.T @ (0.5 * (1.0 + np.tanh(0.5 * z)) - y) + alpha * w
        return float(f), g
    return x, y, fun


# ----------------------------------------------------------------- functional core

@pytest.mark.parametrize("n", [2, 5, 20])
def test_rosenbrock_reaches_the_minimum(n):
    x0 = np.tile([-1.2, 1.0], n // 2 + 1)[:n]
    res = minimize_lbfgs(rosenbrock, x0, max_iter=500, tol=1e-8)
    assert res.converged, res.message
    np.testing.assert_allclose(res.x, np.ones(n), atol=1e-6)
    assert res.fun < 1e-12
    assert np.all(x0[:2] == [-1.2, 1.0])  # x0 is not modified


def test_quadratic_matches_the_closed_form(rng):
    a, b, fun = random_quadratic(rng, 50)
    # Stop on the gradient only (ftol=0); max|g| = 1e-7 is about what a line search on
    # float64 values of f ~ 1 can resolve (f changes by ~|g|^2 / L, L = 100).
    res = minimize_lbfgs(fun, np.zeros(50), max_iter=500, tol=1e-7, ftol=0.0)
    assert res.converged and res.message == "max|g| <= tol"
    expected = np.linalg.solve(a, b)
    np.testing.assert_allclose(res.x, expected, rtol=0, atol=1e-6)  # |x - x*| <= |A^-1| |g|_2, |A^-1| = 1
    assert res.fun == pytest.approx(-0.5 * b @ expected, rel=1e-12)
    np.testing.assert_allclose(res.grad, a @ res.x - b, atol=1e-12)


def test_float32_stays_float32(rng):
    a, b, fun64 = random_quadratic(rng, 30, condition=10.0)
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    seen = set()

    def fun(x):  # float32 gradient, objective summed in float64 so that the line search can resolve it
        seen.add(x.dtype)
        x64 = x.astype(np.float64)
        return float(x64 @ (a @ x64) / 2 - b @ x64), a32 @ x - b32
    res = minimize_lbfgs(fun, np.zeros(30, np.float32), tol=1e-4)
    assert res.converged, res.message
    assert res.x.dtype == np.float32 and res.grad.dtype == np.float32 and seen == {np.dtype(np.float32)}
    np.testing.assert_allclose(res.x, np.linalg.solve(a, b), atol=1e-4)


def test_logistic_matches_scipy_lbfgsb(rng):
    scipy_optimize = pytest.importorskip("scipy.optimize")
    x, _, fun = logistic_problem(rng)
    ftol = 64 * np.finfo(np.float64).eps  # scikit-learn's settings for its lbfgs solver
    ref = scipy_optimize.minimize(fun, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B",
                                  options=dict(maxiter=100, gtol=1e-4, ftol=ftol, maxls=50))
    res = minimize_lbfgs(fun, np.zeros(x.shape[1]), max_iter=100, tol=1e-4)
    assert res.converged, res.message
    assert abs(res.fun - ref.fun) <= 1e-6 * abs(ref.fun)
    np.testing.assert_allclose(res.x, ref.x, atol=1e-4 * np.abs(ref.x).max())
    assert res.nit <= ref.nit + 5


def test_few_evaluations_per_iteration(rng):
    _, _, fun = logistic_problem(rng, n=5000, d=50)
    calls = []

    def counted(w):
        calls.append(1)
        return fun(w)
    res = minimize_lbfgs(counted, np.zeros(50), max_iter=200, tol=1e-6)
    assert res.converged, res.message
    assert res.nfev == len(calls)
    assert res.nfev <= 1.5 * res.nit + 5, (res.nit, res.nfev)


def test_stops_at_max_iter_unconverged():
    res = minimize_lbfgs(rosenbrock, np.array([-1.2, 1.0]), max_iter=3, tol=1e-10)
    assert (res.nit, res.converged) == (3, False)
    assert "max_iter" in res.message


def test_ftol_stops_on_a_flat_objective(rng):
    a, b, fun = random_quadratic(rng, 10)
    res = minimize_lbfgs(fun, np.zeros(10), tol=0.0, max_iter=1000)  # gtol never fires
    assert res.converged and "ftol" in res.message
    assert res.nit < 1000


def test_optimal_start_runs_no_iteration(rng):
    a, b, fun = random_quadratic(rng, 5)
    res = minimize_lbfgs(fun, np.linalg.solve(a, b), tol=1e-8)
    assert (res.nit, res.nfev, res.converged) == (0, 1, True)


def test_callback_sees_each_iterate(rng):
    a, b, fun = random_quadratic(rng, 8)
    seen = []
    res = minimize_lbfgs(fun, np.zeros(8), callback=lambda x: seen.append(x.copy()), tol=1e-8)
    assert len(seen) == res.nit
    np.testing.assert_array_equal(seen[-1], res.x)


def test_rejects_non_flat_or_integer_x0():
    with pytest.raises(ValueError, match="flat float"):
        minimize_lbfgs(rosenbrock, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="flat float"):
        minimize_lbfgs(rosenbrock, np.zeros(2, dtype=np.int64))


def test_at_the_rounding_floor_it_stops_without_wasting_evaluations(rng):
    """Asked for more than float64 values of f can show (ftol=0, tiny tol), it follows the slopes
    while f is flat to rounding, then stops unconverged, saying why, without a burst of evaluations."""
    a, b, fun = random_quadratic(rng, 30, condition=10.0)
    res = minimize_lbfgs(fun, np.zeros(30), tol=1e-13, ftol=0.0, max_iter=1000)
    assert not res.converged and "rounding" in res.message
    assert res.nfev <= 1.5 * res.nit + 5, (res.nit, res.nfev)
    np.testing.assert_allclose(res.x, np.linalg.solve(a, b), atol=1e-7)


def test_two_loop_recursion_is_the_bfgs_inverse_hessian(rng):
    """-H g from the two-loop recursion equals the explicit BFGS update of H0 = gamma I (N&W eq. 6.17)."""
    from tinygrad_dot.optim.lbfgs import _History

    n, m = 6, 4
    a, _, _ = random_quadratic(rng, n)
    hist = _History(m)
    pairs = []
    for _ in range(m + 2):  # more pairs than the memory holds: the oldest are dropped
        s = rng.standard_normal(n)
        y = a @ s
        hist.push(s, y, float(s @ y), float(y @ y))
        pairs = (pairs + [(s, y)])[-m:]
    h = (pairs[-1][0] @ pairs[-1][1]) / (pairs[-1][1] @ pairs[-1][1]) * np.eye(n)
    for s, y in pairs:
        rho = 1.0 / (s @ y)
        v = np.eye(n) - rho * np.outer(y, s)
        h = v.T @ h @ v + rho * np.outer(s, s)
    g = rng.standard_normal(n)
    np.testing.assert_allclose(hist.direction(g), -h @ g, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("t0", [1e-3, 1.0, 50.0])
def test_line_search_returns_a_strong_wolfe_point(t0):
    # phi(t) = f(x + t d) along a 1-D slice of a smooth non-quadratic function, minimum near t = 2.
    phi = lambda t: (t - 2.0) ** 4 + 0.5 * (t - 2.0) ** 2 - 0.3 * t  # noqa: E731
    dphi = lambda t: 4 * (t - 2.0) ** 3 + (t - 2.0) - 0.3  # noqa: E731
    calls = []

    def evaluate(t):
        calls.append(t)
        return _Trial(t, phi(t), dphi(t))
    trial, nfev = strong_wolfe(evaluate, phi(0.0), dphi(0.0), t0, c1=1e-4, c2=0.9)
    assert nfev == len(calls) and nfev <= 10
    assert trial.f <= phi(0.0) + 1e-4 * trial.t * dphi(0.0)
    assert abs(trial.gtd) <= 0.9 * abs(dphi(0.0))


# ----------------------------------------------------------------- td.optim.LBFGS

def logistic_closure_td(x, y, opt, w, b, alpha):
    xt, yt = td.tensor(x), td.tensor(y)

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(xt @ w + b, yt) + alpha * (w * w).sum()
        loss.backward()
        return loss
    return closure


def run_td_lbfgs(x, y, line_search_fn, steps=5, alpha=0.01, **kwargs):
    w = td.zeros(x.shape[1], dtype=td.float64, requires_grad=True)
    b = td.zeros(1, dtype=td.float64, requires_grad=True)
    opt = optim.LBFGS([w, b], line_search_fn=line_search_fn, **kwargs)
    closure = logistic_closure_td(x, y, opt, w, b, alpha)
    for _ in range(steps):
        opt.step(closure)
    return float(closure()), opt, w, b, closure


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_lbfgs_matches_torch(rng, line_search_fn):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: no torch.optim.LBFGS to compare with")
    x, y, _ = logistic_problem(rng, n=500, d=10)
    ours, opt, w, _, _ = run_td_lbfgs(x, y, line_search_fn, max_iter=100)

    tw = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    tb = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    topt = torch.optim.LBFGS([tw, tb], line_search_fn=line_search_fn, max_iter=100)
    tx, ty = torch.tensor(x), torch.tensor(y)

    def tclosure():
        topt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(tx @ tw + tb, ty) + 0.01 * (tw * tw).sum()
        loss.backward()
        return loss
    for _ in range(5):
        topt.step(tclosure)
    theirs = tclosure().item()
    assert ours == pytest.approx(theirs, rel=1e-6)
    np.testing.assert_allclose(w.numpy(), tw.detach().numpy(), atol=1e-4)
    assert opt.state[id(w)]["n_iter"] <= topt.state[tw]["n_iter"] + 5


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_lbfgs_follows_torch_step_by_step_on_rosenbrock(line_search_fn):
    """Same iterates and the same number of closure calls after every step(), memory overflow
    included (history_size=5): the line search brackets and zooms here, not just takes t = 1."""
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: no torch.optim.LBFGS to compare with")
    start = np.array([-1.2, 1.0, -1.2, 1.0, 0.5])
    kwargs = dict(line_search_fn=line_search_fn, max_iter=10, history_size=5, lr=1.0 if line_search_fn else 0.1)
    x = td.tensor(start, requires_grad=True)
    tx = torch.tensor(start, requires_grad=True)
    opt, topt = optim.LBFGS([x], **kwargs), torch.optim.LBFGS([tx], **kwargs)

    def closure_for(v, o):
        def closure():
            o.zero_grad()
            a, b = v[:-1], v[1:]
            loss = (100.0 * (b - a * a) ** 2 + (1.0 - a) ** 2).sum()
            loss.backward()
            return loss
        return closure
    closure, tclosure = closure_for(x, opt), closure_for(tx, topt)
    for _ in range(6):
        assert float(opt.step(closure)) == pytest.approx(float(topt.step(tclosure).detach()), rel=1e-9, abs=1e-12)
        assert opt.state[id(x)]["func_evals"] == topt.state[tx]["func_evals"]
        np.testing.assert_allclose(x.numpy(), tx.detach().numpy(), rtol=0, atol=1e-9)


def test_lbfgs_reaches_the_logistic_optimum(rng):
    """With a line search and a tight tolerance the class lands on the functional core's optimum."""
    x, y, _ = logistic_problem(rng, n=400, d=6)
    n = len(y)
    loss, opt, w, b, _ = run_td_lbfgs(x, y, "strong_wolfe", steps=3, max_iter=200, tolerance_grad=1e-12,
                                      tolerance_change=1e-14)

    def fun(wb):  # the same mean loss over [w, b]
        z = x @ wb[:-1] + wb[-1]
        f = np.mean(np.logaddexp(0.0, z) - y * z) + 0.01 * wb[:-1] @ wb[:-1]
        r = (0.5 * (1.0 + np.tanh(0.5 * z)) - y) / n
        return float(f), np.append(x.T @ r + 0.02 * wb[:-1], r.sum())
    ref = minimize_lbfgs(fun, np.zeros(x.shape[1] + 1), tol=1e-10, max_iter=500)
    assert loss == pytest.approx(ref.fun, rel=1e-10)
    np.testing.assert_allclose(np.append(w.numpy(), b.numpy()), ref.x, atol=1e-6)


def test_lbfgs_handles_several_shaped_params(rng):
    """A (3, 4) matrix and a bias: flattened into one vector and written back in place."""
    target = rng.standard_normal((3, 4))
    shift = rng.standard_normal(4)
    m = td.zeros((3, 4), dtype=td.float64, requires_grad=True)
    c = td.zeros(4, dtype=td.float64, requires_grad=True)
    storage = m.array
    opt = optim.LBFGS([m, c], line_search_fn="strong_wolfe", tolerance_grad=1e-12, tolerance_change=1e-15)
    a = td.tensor(rng.standard_normal((5, 3)))

    def closure():
        opt.zero_grad()
        loss = (((m - td.tensor(target)) ** 2).sum() + ((a @ m + c - td.tensor(shift)) ** 2).sum()
                + ((c - td.tensor(shift)) ** 2).sum())
        loss.backward()
        return loss
    for _ in range(3):
        opt.step(closure)
    assert m.array is storage  # updated in place
    assert m.shape == (3, 4) and c.shape == (4,)
    closure()  # at the optimum the gradient vanishes
    assert np.abs(m.grad.numpy()).max() < 1e-6 and np.abs(c.grad.numpy()).max() < 1e-6


def test_lbfgs_step_returns_the_loss_before_the_step(rng):
    x, y, _ = logistic_problem(rng, n=200, d=4)
    w = td.zeros(4, dtype=td.float64, requires_grad=True)
    b = td.zeros(1, dtype=td.float64, requires_grad=True)
    opt = optim.LBFGS([w, b])
    closure = logistic_closure_td(x, y, opt, w, b, 0.0)
    first = float(opt.step(closure))
    assert first == pytest.approx(math.log(2.0))
    assert float(closure()) < first


def test_lbfgs_step_under_no_grad_still_records_the_closure(rng):
    x, y, _ = logistic_problem(rng, n=200, d=4)
    loss, opt, w, b, closure = run_td_lbfgs(x, y, "strong_wolfe", steps=1, max_iter=3)
    with td.no_grad():
        opt.step(closure)
    assert float(closure()) < loss


def test_lbfgs_max_eval_bounds_closure_calls(rng):
    x, y, _ = logistic_problem(rng, n=200, d=4)
    w = td.zeros(4, dtype=td.float64, requires_grad=True)
    b = td.zeros(1, dtype=td.float64, requires_grad=True)
    opt = optim.LBFGS([w, b], max_iter=50, max_eval=7, line_search_fn="strong_wolfe", tolerance_grad=0.0,
                      tolerance_change=0.0)
    inner = logistic_closure_td(x, y, opt, w, b, 0.0)
    calls = []

    def closure():
        calls.append(1)
        return inner()
    opt.step(closure)
    assert len(calls) == opt.state[id(w)]["func_evals"]
    assert len(calls) <= 7 + 25  # the last line search may run past max_eval, as in PyTorch


def test_lbfgs_state_dict_round_trip(rng):
    x, y, _ = logistic_problem(rng, n=300, d=5)
    _, opt, w, b, closure = run_td_lbfgs(x, y, "strong_wolfe", steps=1, max_iter=3)
    saved_w, saved_b, state = w.numpy(), b.numpy(), opt.state_dict()
    opt.step(closure)
    expected = w.numpy()

    w2 = td.tensor(saved_w, requires_grad=True)
    b2 = td.tensor(saved_b, requires_grad=True)
    opt2 = optim.LBFGS([w2, b2], line_search_fn="strong_wolfe", max_iter=3)
    opt2.load_state_dict(state)
    opt2.step(logistic_closure_td(x, y, opt2, w2, b2, 0.01))
    np.testing.assert_allclose(w2.numpy(), expected, rtol=1e-12, atol=1e-15)


def test_lbfgs_rejects_bad_arguments():
    w = td.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match="line_search_fn"):
        optim.LBFGS([w], line_search_fn="backtracking")
    with pytest.raises(ValueError, match="per-parameter"):
        optim.LBFGS([{"params": [w]}, {"params": [td.zeros(2, requires_grad=True)]}])
    with pytest.raises(RuntimeError, match="closure"):
        optim.LBFGS([w]).step()
    assert optim.LBFGS is LBFGS


# ----------------------------------------------------------------- GPU

@pytest.mark.gpu
def test_minimize_on_cupy_arrays_stays_on_the_device(rng):
    import cupy

    a, b, _ = random_quadratic(rng, 40)
    ag, bg = cupy.asarray(a), cupy.asarray(b)

    def fun(x):
        assert isinstance(x, cupy.ndarray)
        return float(x @ (ag @ x) / 2 - bg @ x), ag @ x - bg
    res = minimize_lbfgs(fun, cupy.zeros(40), tol=1e-10, max_iter=500)
    assert isinstance(res.x, cupy.ndarray) and isinstance(res.grad, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(res.x), np.linalg.solve(a, b), atol=1e-7)
