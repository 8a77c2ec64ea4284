"""How a matmul maps onto one kernel launch: pure Python, shared by the CUDA path
and the CPU emulation so both exercise the same operand mapping.

Each operand becomes (transposed?, leading dimension, batch stride), all in
elements, read in place through its strides. Only an operand whose matrix strides
are both non-unit (or negative, or not whole elements), or whose broadcast batch
dims cannot be described by a single batch stride, is copied.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import configs

INT32_MAX = 2**31 - 1  # the kernels' M, N, K are ints


def _largest_tile(extent) -> int:
    return max(extent(cfg) for dtype in (configs.F32, configs.F64) for cfg in configs.all_configs(dtype))


# The kernels index N and K with 32-bit ints a whole tile at a time: the K loop's
# k0 += BK and its tile count (K + BK - 1) / BK, and a block's column indices
# n0 + (offset < BN), run up to the next multiple of the tile past N or K. Within
# a tile of 2**31 they overflow and the kernel silently writes garbage, so N and K
# stop a tile short of 2**31, for the largest tile of any config the package
# launches (the autotuner may pick any of them). M needs no such margin: launches
# split the rows (row_chunks) and each takes at most MAX_GRID_Y row tiles.
TILE_N_MAX = _largest_tile(lambda cfg: cfg.block_tile[1])
TILE_K_MAX = _largest_tile(lambda cfg: cfg.tile_k)
N_LIMIT = INT32_MAX + 1 - TILE_N_MAX
K_LIMIT = INT32_MAX + 1 - TILE_K_MAX


@dataclass(frozen=True)
class OperandPlan:
    trans: bool        # stored column-major: element (r, c) at r + c * ld
    ld: int            # leading dimension in elements
    batch_stride: int  # elements between batch entries (0 broadcasts)
    copy: bool         # must be materialized C-contiguous first (then trans=False)


@dataclass(frozen=True)
class MatmulPlan:
    M: int
    N: int
    K: int
    batch_shape: tuple
    a: OperandPlan
    b: OperandPlan

    @property
    def batch(self) -> int:
        return int(np.prod(self.batch_shape, dtype=np.int64))

    @property
    def out_shape(self) -> tuple:
        return (*self.batch_shape, self.M, self.N)

    @property
    def layout(self) -> str:
        return ("T" if self.a.trans else "N") + ("T" if self.b.trans else "N")


def _matrix_layout(rows: int, cols: int, s_row: int, s_col: int):
    """(trans, ld) reading the matrix in place, or None when it must be copied."""
    if s_row < 0 or s_col < 0:
        return None
    if s_col == 1 or cols == 1:
        return False, (s_row if rows > 1 else max(cols, 1))
    if s_row == 1 or rows == 1:
        return True, (s_col if cols > 1 else max(rows, 1))
    return None


def _single_batch_stride(op_batch: tuple, op_strides: tuple, out_batch: tuple):
    """One stride s with offset(z) = z * s over the flattened output batch, or None."""
    nd = len(out_batch)
    shape = (1,) * (nd - len(op_batch)) + tuple(op_batch)
    strides = (0,) * (nd - len(op_strides)) + tuple(op_strides)
    eff = [0 if shape[i] == 1 else strides[i] for i in range(nd)]  # broadcast dims read stride 0
    s, span = None, 1
    for i in reversed(range(nd)):
        if out_batch[i] == 1:
            continue
        if s is None:
            s = eff[i]
        elif eff[i] != s * span:
            return None
        span *= out_batch[i]
    if s is not None and s < 0:
        return None
    return 0 if s is None else s


def _operand(shape, strides_bytes, itemsize, out_batch) -> OperandPlan:
    rows, cols = shape[-2], shape[-1]
    # a copy is C-contiguous with the full output batch shape
    copied = OperandPlan(False, max(cols, 1), rows * cols, True)
    if any(st % itemsize for st in strides_bytes):
        return copied
    st = [x // itemsize for x in strides_bytes]
    mat = _matrix_layout(rows, cols, st[-2], st[-1])
    bstride = _single_batch_stride(tuple(shape[:-2]), tuple(st[:-2]), out_batch)
    if mat is None or bstride is None:
        return copied
    return OperandPlan(mat[0], mat[1], bstride, False)


def plan_matmul(a_shape, a_strides, b_shape, b_strides, itemsize: int) -> MatmulPlan:
    """Plan C = A @ B (numpy.matmul rules, both operands at least 2-D; strides in bytes)."""
    a_shape, b_shape = tuple(a_shape), tuple(b_shape)
    if len(a_shape) < 2 or len(b_shape) < 2:
        raise ValueError(f"matmul operands need at least 2 dimensions, got shapes {a_shape} and {b_shape}")
    if a_shape[-1] != b_shape[-2]:
        raise ValueError(f"matmul shape mismatch: {a_shape} @ {b_shape} "
                         f"(inner dimensions {a_shape[-1]} and {b_shape[-2]} differ)")
    try:
        out_batch = tuple(np.broadcast_shapes(a_shape[:-2], b_shape[:-2]))
    except ValueError:
        raise ValueError(f"matmul batch dimensions do not broadcast: {a_shape} @ {b_shape}") from None
    M, N, K = a_shape[-2], b_shape[-1], a_shape[-1]
    for name, value, limit, why in (
            ("M", M, INT32_MAX, "2**31 - 1: a 32-bit int"),
            ("N", N, N_LIMIT, f"2**31 - {TILE_N_MAX}: 32-bit column indices run to the end of a {TILE_N_MAX}-wide tile"),
            ("K", K, K_LIMIT, f"2**31 - {TILE_K_MAX}: the K loop steps {TILE_K_MAX} at a time in 32-bit ints")):
        if value > limit:
            raise ValueError(f"matmul {a_shape} @ {b_shape}: {name}={value} is over the kernels' limit of "
                             f"{limit} for {name} ({why})")
    return MatmulPlan(a_shape[-2], b_shape[-1], a_shape[-1], out_batch,
                      _operand(a_shape, a_strides, itemsize, out_batch),
                      _operand(b_shape, b_strides, itemsize, out_batch))


def materialize(xp, x, batch_shape: tuple):
    """The C-contiguous copy, over the full output batch, that a plan with copy=True
    asks for (xp is numpy or cupy)."""
    return xp.ascontiguousarray(xp.broadcast_to(x, (*batch_shape, *x.shape[-2:])))


def batch_chunks(batch: int, max_grid_z: int = 65535):
    """(first entry, count) of each launch: one launch unless the batch exceeds the
    grid's z limit, in which case the host offsets the pointers per chunk."""
    for z0 in range(0, batch, max_grid_z):
        yield z0, min(max_grid_z, batch - z0)


def row_chunks(M: int, block_m: int, max_grid_y: int = 65535):
    """(first row, rows) of each launch: the grid's y dimension counts row tiles of
    block_m and is limited to 65535, so an M past block_m * 65535 rows is split on
    the host (A's and C's pointers offset by the first row), like the batch."""
    step = block_m * max_grid_y
    for m0 in range(0, M, step):
        yield m0, min(step, M - m0)


def row_offset(op: OperandPlan, m0: int) -> int:
    """Elements from an operand's start to its row m0."""
    return m0 if op.trans else m0 * op.ld
