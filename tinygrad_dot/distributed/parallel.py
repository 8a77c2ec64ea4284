"""Data-parallel training loops over Dask arrays: ``DataParallel``.

The data is cut in blocks of rows, computed once and kept on the workers; each
step sends the model (its parameters: a few arrays) to every chunk, runs the
user's td loss there with autograd, and brings back one loss and one gradient
per parameter per chunk. The gradients are summed (weighted by the chunks' rows,
so the result is the full-batch mean's gradient) and the td optimizer steps
on the client::

    import dask.array as da
    import tinygrad_dot as td
    from distributed import Client, LocalCluster
    from tinygrad_dot.distributed import DataParallel

    client = Client(LocalCluster(n_workers=2, threads_per_worker=1))
    X = da.random.default_rng(0).standard_normal((100_000, 20), chunks=(25_000, 20))
    y = X @ da.arange(20.0) + 1.0

    def loss_fn(model, X, y):           # one chunk: td tensors in, the chunk's mean loss out
        return td.nn.functional.mse_loss(model(X)[:, 0], y)

    model = td.nn.Linear(20, 1, dtype="float64")
    optimizer = td.optim.SGD(model.parameters(), lr=0.1)
    data = DataParallel(X, y)
    for step in range(100):
        loss = data.step(model, loss_fn, optimizer)

Equivalent, on one machine, to ``loss_fn(model, X, y)`` on all rows followed by
``backward()`` and ``optimizer.step()`` (up to the order of the floating-point
sums). What goes to the workers: the model object (td's classes, its
parameter arrays), ``loss_fn`` and this module's functions.
"""
from __future__ import annotations

import numpy as np

from ._blocks import RowBlocks, block_backend, get_client

__all__ = ["DataParallel"]


def _chunk_loss_and_grads(x, y, w, model, loss_fn, rows_total):
    """On a worker: the chunk's loss and gradients, weighted by its share of the rows. A SciPy-sparse
    chunk reaches ``loss_fn`` as td's sparse CSR tensor (what ``td.tensor`` makes of it)."""
    from ..tensor import Tensor, tensor

    device = block_backend(x).name
    share = x.shape[0] / rows_total
    if device != "cpu":
        model = model.to(device)  # this worker's copy, on the chunk's GPU
    for p in model.parameters():
        p.grad = None
    loss = loss_fn(model, tensor(x, device=device), None if y is None else Tensor(y, device=device))
    (loss * share).backward()
    grads = tuple(np.zeros(p.shape, dtype=p.dtype) if p.grad is None else p.grad.numpy() for p in model.parameters())
    return (np.float64(float(loss.item()) * share),) + grads


def _chunk_call(x, y, w, function, args):
    return function(x, y, *args)


class DataParallel:
    """X (and y) of a training loop, in row chunks on the workers of a dask.distributed cluster.

    ``X``, ``y``: dask arrays (or DataFrames/Series) cut in the same row chunks; chunks are
    computed, checked (width, dtype, NaN, y aligned with X's rows; errors name the
    chunk) and kept on the workers until ``close()`` or the object is dropped. X's chunks
    may be SciPy-sparse (all of them): ``loss_fn`` then gets td's sparse CSR tensor.
    ``dtype``: cast the chunks of X to this dtype on the workers (default: as they are).
    ``client``: the Client to use (default: the active one).
    """

    def __init__(self, X, y=None, *, dtype=None, client=None):
        self.client = get_client(client)
        self.blocks = RowBlocks.load(self.client, X, y, dtype_rule=dtype, y_kind="any")

    @property
    def n_samples(self) -> int:
        return self.blocks.n

    @property
    def chunk_rows(self) -> list:
        return list(self.blocks.rows)

    def map(self, function, *args) -> list:
        """``function(X_i, y_i, *args)`` on every chunk (NumPy or CuPy arrays, or SciPy-sparse X_i;
        y_i None without y), run where the chunk lives; the results, chunk by chunk."""
        return self.blocks.map_gather(_chunk_call, function, args)

    def sum(self, function, *args):
        """The sum over chunks of ``function(X_i, y_i, *args)`` (an array or a tuple of arrays):
        each worker adds its chunks' results and sends one sum; the client adds those."""
        return self.blocks.map_gather(_chunk_call, function, args, reduce=True)

    def loss_and_grad(self, model, loss_fn):
        """(loss, gradients) of the mean of ``loss_fn`` over all rows: ``loss_fn(model, X_i, y_i)``
        is a chunk's mean loss (a td scalar); the chunks' results are weighted by their rows.
        Gradients come back as NumPy arrays in the order of ``model.parameters()``."""
        parameters = list(model.parameters())
        if not parameters:
            raise ValueError("the model has no parameters")
        total = self.blocks.map_gather(_chunk_loss_and_grads, model, loss_fn, self.blocks.n, reduce=True)
        return float(total[0]), list(total[1:])

    def step(self, model, loss_fn, optimizer) -> float:
        """One full-batch step: the gradients of ``loss_and_grad`` set as the parameters'
        ``.grad`` and ``optimizer.step()`` on the client. Returns the loss before the step."""
        from ..tensor import Tensor

        loss, grads = self.loss_and_grad(model, loss_fn)
        for p, g in zip(model.parameters(), grads):
            p.grad = Tensor(np.asarray(g, dtype=p.dtype), device=p.device)
        optimizer.step()
        return loss

    def close(self) -> None:
        """Release the chunks held on the workers."""
        self.blocks.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
