"""td on Dask clusters: estimators that fit Dask arrays, and a data-parallel helper.

With a ``dask.distributed.Client`` active, every td.models estimator takes
``dask.array`` inputs (and Dask DataFrames/Series) and fits on the cluster:
the chunks stay on the workers, the parameters on the client. See
``docs/distributed.md``.

``DataParallel`` is the same machinery for hand-written training loops: map a
td loss function over the persisted chunks, sum the gradients, step a td
optimizer on the client.

Needs the ``dask`` extra: ``pip install '.[dask]'`` in the source checkout. Importing this
package does not import Dask; using it does.
"""
from __future__ import annotations

__all__ = ["DataParallel"]


def __getattr__(name):
    if name == "DataParallel":
        from .parallel import DataParallel

        return DataParallel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
