"""The guard-free interior path of the fast rungs, run on device "emu".

cp_async and warp_tiled run blocks whose tiles lie wholly inside the matrices
(with 128-bit access allowed) through a K loop without bounds or alignment
tests (td::InteriorCopy), and hand the last partial K tile (cp_async: the last
STAGES-1 and the partial one) and every edge block to the guarded loop. The
odd shapes of test_gemm_emulation.py never give a 128x128 tile a whole
neighbourhood, so here each config x layout x dtype gets a shape with interior
blocks, edge blocks on both sides and a K tail, and shapes where the interior
path covers everything or nothing (K a multiple of BK, K shorter than the
pipeline, misaligned pointers). "emu" hands out NaN-poisoned outputs, so an
element that the interior path skips fails. Operands have leading dimensions
padded to a multiple of 8 (128-bit rows), as the interior path needs.
"""
import zlib

import numpy as np
import pytest

from test_gemm_emulation import check, operand
from tinygrad_dot.gemm import configs

FAST = ("cp_async", "warp_tiled")


def _fast_configs():
    return [pytest.param(dtype, cfg, id=f"{dtype.name}-{cfg.label()}")
            for dtype in (configs.F32, configs.F64)
            for cfg in configs.all_configs(dtype) if cfg.rung in FAST]


@pytest.mark.parametrize("dtype, cfg", _fast_configs())
def test_interior_and_edge_blocks(dtype, cfg):
    bm, bn = cfg.block_tile
    bk, stages = cfg.tile_k, cfg.p.get("STAGES", 1)
    rng = np.random.default_rng(zlib.crc32(cfg.label().encode()))
    shapes = [
        (2 * bm + 3, bn + 5, (stages + 2) * bk + 3),  # interior and edge blocks, a partial K tile
        (bm, 2 * bn, (stages + 1) * bk),               # every block interior, K a multiple of BK
        (bm, bn, (stages - 1) * bk + 1),               # K too short for the interior loop
    ]
    for layout in configs.LAYOUTS:
        ta, tb = layout[0] == "T", layout[1] == "T"
        for M, N, K in shapes:
            check(operand(rng, M, K, dtype, ta, True), operand(rng, K, N, dtype, tb, True), cfg)
    # a misaligned operand sends every block down the guarded path
    M, N, K = shapes[1]
    check(operand(rng, M, K, dtype, False, True, offset=1), operand(rng, K, N, dtype, False, True), cfg)
