"""td.optim: each optimizer's trajectory against its update equations written
out in NumPy (and against torch.optim when PyTorch is installed), state_dict,
parameter groups, and the learning-rate schedulers."""
import math

import numpy as np
import pytest

import tinygrad_dot as td
import tinygrad_dot.io
import tinygrad_dot.optim as optim
from tinygrad_dot.optim import lr_scheduler

STEPS = 25


# ----------------------------------------------------------------- independent references
# Textbook forms of each rule (bias-corrected moments etc.), one step at a time.


def sgd_reference(lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    buf = None

    def step(w, g):
        nonlocal buf
        g = g + weight_decay * w
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        return w - lr * g
    return step


def adam_reference(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, decoupled=False):
    m = v = v_max = 0.0
    t = 0

    def step(w, g):
        nonlocal m, v, v_max, t
        t += 1
        if decoupled:
            w = w * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * w
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        v_max = np.maximum(v_max, v) if amsgrad else v
        m_hat = m / (1 - betas[0] ** t)
        v_hat = v_max / (1 - betas[1] ** t)
        return w - lr * m_hat / (np.sqrt(v_hat) + eps)
    return step


def adagrad_reference(lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10):
    total = initial_accumulator_value
    t = 0

    def step(w, g):
        nonlocal total, t
        t += 1
        g = g + weight_decay * w
        total = total + g * g
        return w - lr / (1 + (t - 1) * lr_decay) * g / (np.sqrt(total) + eps)
    return step


def rmsprop_reference(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
    square = mean = buf = 0.0

    def step(w, g):
        nonlocal square, mean, buf
        g = g + weight_decay * w
        square = alpha * square + (1 - alpha) * g * g
        variance = square
        if centered:
            mean = alpha * mean + (1 - alpha) * g
            variance = square - mean * mean
        scaled = g / (np.sqrt(variance) + eps)
        if momentum:
            buf = momentum * buf + scaled
            return w - lr * buf
        return w - lr * scaled
    return step


CASES = [
    ("SGD", dict(lr=0.05), sgd_reference),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01), sgd_reference),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True), sgd_reference),
    ("Adam", dict(), adam_reference),
    ("Adam", dict(lr=0.05, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True), adam_reference),
    ("AdamW", dict(lr=0.05), lambda **k: adam_reference(weight_decay=1e-2, decoupled=True, **k)),
    ("AdamW", dict(lr=0.05, weight_decay=0.3, amsgrad=True),
     lambda **k: adam_reference(decoupled=True, **k)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.01, initial_accumulator_value=0.1), adagrad_reference),
    ("RMSprop", dict(), rmsprop_reference),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.01), rmsprop_reference),
]
IDS = [f"{name}-{'-'.join(map(str, kwargs.values())) or 'defaults'}" for name, kwargs, _ in CASES]


def problem(rng):
    """Least squares in two parameters (a matrix and a vector), so that several
    tensors, broadcasting and a changing gradient are all exercised."""
    A = rng.standard_normal((8, 4))
    target = rng.standard_normal((8, 3))
    w0, b0 = rng.standard_normal((4, 3)), rng.standard_normal(3)

    def numpy_grads(w, b):
        residual = A @ w + b - target
        return 2 * A.T @ residual / residual.size, 2 * residual.sum(axis=0) / residual.size

    def loss(w, b):  # works on td tensors and on torch tensors alike
        lift = w.new_tensor if hasattr(w, "new_tensor") else td.tensor
        return (lift(A) @ w + b - lift(target)).pow(2).mean()
    return w0, b0, numpy_grads, loss


def run_ours(name, kwargs, w0, b0, loss, steps=STEPS, device="cpu"):
    w = td.tensor(w0.copy(), device=device, requires_grad=True)
    b = td.tensor(b0.copy(), device=device, requires_grad=True)
    opt = getattr(optim, name)([w, b], **kwargs)
    path = []
    for _ in range(steps):
        opt.zero_grad()
        loss(w, b).backward()
        opt.step()
        path.append((w.numpy(), b.numpy()))
    return path


@pytest.mark.parametrize("name,kwargs,reference", CASES, ids=IDS)
def test_trajectory_matches_update_equations(rng, name, kwargs, reference):
    w0, b0, numpy_grads, loss = problem(rng)
    ours = run_ours(name, kwargs, w0, b0, loss)
    step_w, step_b = reference(**kwargs), reference(**kwargs)
    w, b = w0, b0
    for i, (our_w, our_b) in enumerate(ours):
        gw, gb = numpy_grads(w, b)
        w, b = step_w(w, gw), step_b(b, gb)
        np.testing.assert_allclose(our_w, w, rtol=1e-9, atol=1e-12, err_msg=f"{name} step {i + 1}")
        np.testing.assert_allclose(our_b, b, rtol=1e-9, atol=1e-12, err_msg=f"{name} step {i + 1}")
    assert not np.allclose(ours[-1][0], w0)  # it moved


@pytest.mark.parametrize("name,kwargs,reference", CASES, ids=IDS)
def test_trajectory_matches_torch(rng, name, kwargs, reference):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed; the NumPy references ran instead")
    w0, b0, _, loss = problem(rng)
    ours = run_ours(name, kwargs, w0, b0, loss)
    w = torch.tensor(w0.copy(), requires_grad=True)
    b = torch.tensor(b0.copy(), requires_grad=True)
    opt = getattr(torch.optim, name)([w, b], **kwargs)
    for i, (our_w, our_b) in enumerate(ours):
        opt.zero_grad()
        loss(w, b).backward()
        opt.step()
        np.testing.assert_allclose(our_w, w.detach().numpy(), rtol=1e-8, atol=1e-12, err_msg=f"step {i + 1}")
        np.testing.assert_allclose(our_b, b.detach().numpy(), rtol=1e-8, atol=1e-12, err_msg=f"step {i + 1}")


# ----------------------------------------------------------------- optimizer mechanics


def test_zero_grad_and_parameters_without_gradients(rng):
    w = td.tensor(rng.standard_normal(3), requires_grad=True)
    frozen = td.tensor(rng.standard_normal(3), requires_grad=True)
    opt = optim.SGD([w, frozen], lr=0.1)
    before = frozen.numpy()
    (w * w).sum().backward()
    opt.step()  # frozen has no .grad: left alone
    np.testing.assert_array_equal(frozen.numpy(), before)
    opt.zero_grad(set_to_none=False)
    assert w.grad is not None and not w.grad.numpy().any()
    opt.zero_grad()
    assert w.grad is None


def test_param_groups_use_their_own_lr(rng):
    a = td.tensor(np.ones(2), requires_grad=True)
    b = td.tensor(np.ones(2), requires_grad=True)
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1, momentum=0.0)
    (a.sum() + b.sum()).backward()
    opt.step()
    np.testing.assert_allclose(a.numpy(), 0.9)
    np.testing.assert_allclose(b.numpy(), 0.5)
    assert opt.param_groups[1]["momentum"] == 0.0 and opt.param_groups[0]["lr"] == 0.1


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.05, momentum=0.9)), ("Adam", dict(amsgrad=True)),
                                         ("RMSprop", dict(momentum=0.5, centered=True)), ("Adagrad", {})])
def test_state_dict_resumes_exactly_through_a_file(rng, tmp_path, name, kwargs):
    w0, b0, _, loss = problem(rng)
    straight = run_ours(name, kwargs, w0, b0, loss, steps=10)[-1]

    w = td.tensor(w0.copy(), requires_grad=True)
    b = td.tensor(b0.copy(), requires_grad=True)
    opt = getattr(optim, name)([w, b], **kwargs)
    for _ in range(5):
        opt.zero_grad()
        loss(w, b).backward()
        opt.step()
    td.io.save({"w": w, "b": b, "optimizer": opt.state_dict()}, tmp_path / "checkpoint.npz")
    saved = td.io.load(tmp_path / "checkpoint.npz")
    w2 = saved["w"].detach().requires_grad_()
    b2 = saved["b"].detach().requires_grad_()
    resumed = getattr(optim, name)([w2, b2], **kwargs)
    resumed.load_state_dict(saved["optimizer"])
    for _ in range(5):
        resumed.zero_grad()
        loss(w2, b2).backward()
        resumed.step()
    np.testing.assert_allclose(w2.numpy(), straight[0], rtol=1e-12)
    np.testing.assert_allclose(b2.numpy(), straight[1], rtol=1e-12)


def test_load_state_dict_rejects_a_different_layout(rng):
    a = td.tensor(np.ones(2), requires_grad=True)
    b = td.tensor(np.ones(2), requires_grad=True)
    state = optim.Adam([a, b]).state_dict()
    with pytest.raises(ValueError, match="2 parameters in the state_dict and 1"):
        optim.Adam([a]).load_state_dict(state)


def test_bad_arguments_are_rejected():
    w = td.tensor(np.ones(2), requires_grad=True)
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([])
    with pytest.raises(ValueError, match="lr"):
        optim.Adam([w], lr=-1)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([w], nesterov=True)
    with pytest.raises(TypeError, match="single tensor"):
        optim.SGD(w)
    with pytest.raises(TypeError, match="unknown hyperparameter"):
        optim.SGD([{"params": [w], "momentun": 0.9}])
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [w]}, {"params": [w]}])
    with pytest.raises(ValueError, match="leaf"):
        optim.SGD([w * 2])


# ----------------------------------------------------------------- schedulers


def scheduled_lrs(make_scheduler, epochs, base_lr=0.1):
    w = td.tensor(np.ones(1), requires_grad=True)
    opt = optim.SGD([w], lr=base_lr)
    scheduler = make_scheduler(opt)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(epochs):
        opt.step()
        scheduler.step()
        lrs.append(scheduler.get_last_lr()[0])
    return np.array(lrs)


SCHEDULES = [
    ("StepLR", dict(step_size=3, gamma=0.5), lambda t: 0.1 * 0.5 ** (t // 3)),
    ("ExponentialLR", dict(gamma=0.9), lambda t: 0.1 * 0.9 ** t),
    ("CosineAnnealingLR", dict(T_max=7, eta_min=0.01),
     lambda t: 0.01 + (0.1 - 0.01) * (1 + math.cos(math.pi * t / 7)) / 2),
]


@pytest.mark.parametrize("name,kwargs,closed_form", SCHEDULES, ids=[s[0] for s in SCHEDULES])
def test_schedulers_follow_their_closed_forms(name, kwargs, closed_form):
    lrs = scheduled_lrs(lambda opt: getattr(lr_scheduler, name)(opt, **kwargs), epochs=14)
    np.testing.assert_allclose(lrs, [closed_form(t) for t in range(15)], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name,kwargs,closed_form", SCHEDULES, ids=[s[0] for s in SCHEDULES])
def test_schedulers_match_torch(name, kwargs, closed_form):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed; the closed forms were checked instead")
    ours = scheduled_lrs(lambda opt: getattr(lr_scheduler, name)(opt, **kwargs), epochs=20)
    p = torch.nn.Parameter(torch.ones(1))
    opt = torch.optim.SGD([p], lr=0.1)
    scheduler = getattr(torch.optim.lr_scheduler, name)(opt, **kwargs)
    theirs = [opt.param_groups[0]["lr"]]
    for _ in range(20):
        opt.step()
        scheduler.step()
        theirs.append(scheduler.get_last_lr()[0])
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


# ----------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.parametrize("name,kwargs,reference", CASES[:4] + CASES[-1:], ids=IDS[:4] + IDS[-1:])
def test_updates_run_on_the_gpu(rng, name, kwargs, reference):
    w0, b0, _, _ = problem(rng)
    # A loss built from the parameters alone, so that nothing in it is tied to the CPU.
    cpu = run_ours(name, kwargs, w0, b0, lambda w, b: (w * w).sum() + (b * b * b).sum())
    gpu = run_ours(name, kwargs, w0, b0, lambda w, b: (w * w).sum() + (b * b * b).sum(), device="cuda")
    for (cw, cb), (gw, gb) in zip(cpu, gpu):
        np.testing.assert_allclose(gw, cw, rtol=1e-9)
        np.testing.assert_allclose(gb, cb, rtol=1e-9)
