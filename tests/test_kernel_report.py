"""The SASS report (tinygrad_dot.gemm.report, `make kernel-report`) and the static
target it checks: the untuned float32 pick for 4096^3 (configs.untuned_config on
an H100's 132 SMs) spends at least 90% of its hot K loop's instructions on FFMA
and fits at least 2 blocks per SM on sm_90.

On sm_90 every instruction that is not an FFMA takes an issue slot from one, so
the FFMA share of the loop bounds the fraction of the FP32 peak the kernel can
reach. Only the pick's own NN instantiation is compiled here (cached on disk by
the kernels' sha256, like the rest of the report), not the ladder.
"""
import json

import pytest

from tinygrad_dot.gemm import configs, nvrtc, report

needs_tools = pytest.mark.skipif(not nvrtc.available() or report.nvdisasm_path() is None,
                                 reason="needs NVRTC and nvdisasm (pip: nvidia-cuda-nvrtc-cu12, "
                                        "nvidia-cuda-nvdisasm)")

# Two loops with the same FFMAs (a guard-free interior copy and a guarded one),
# a loop without FFMAs, a never-executed placeholder and shared accesses of
# several widths: what nvdisasm -c prints, cut down.
SASS = """
        /*0000*/                   MOV R1, c[0x0][0x28] ;
.L_x_1:
        /*0010*/                   BAR.SYNC.DEFER_BLOCKING 0x0 ;
        /*0020*/              @!PT LDS RZ, [RZ] ;
        /*0030*/                   LDS.128 R4, [R2] ;
        /*0040*/                   LDS.64 R8, [R2+0x10] ;
        /*0050*/                   FFMA R10, R4, R8, R10 ;
        /*0060*/                   FFMA R11, R5, R9, R11 ;
        /*0070*/                   STS [R3], R4 ;
        /*0080*/              @!P0 BRA `(.L_x_1) ;
.L_x_2:
        /*0090*/                   LDS.128 R4, [R2] ;
        /*00a0*/                   FFMA R10, R4, R8, R10 ;
        /*00b0*/                   IADD3 R2, R2, 0x10, RZ ;
        /*00c0*/                   ISETP.GE.AND P0, PT, R2, R7, PT ;
        /*00d0*/                   FFMA R11, R5, R9, R11 ;
        /*00e0*/                   HFMA2.MMA R12, -RZ, RZ, 0, 0 ;
        /*00f0*/              @!P0 BRA `(.L_x_2) ;
.L_x_3:
        /*0100*/                   IADD3 R0, R0, 0x1, RZ ;
        /*0110*/               @P1 BRA `(.L_x_3) ;
        /*0120*/                   EXIT ;
"""


def test_hot_loop_reads_the_sass():
    loop = report.hot_loop(SASS)
    # both loops hold 2 FFMA; the one with fewer instructions (the interior copy) is hot;
    # HFMA2.MMA (a move idiom) is not an FMA
    assert (loop.start, loop.end, loop.instructions, loop.fmas) == (0x90, 0xF0, 7, 2)
    assert loop.peeled_copies == 2 and loop.nested_loops == 0 and loop.predicated_off == 0
    assert loop.fma_share == pytest.approx(2 / 7) and loop.counts["HFMA2"] == 1
    assert (loop.lds_bytes, loop.sts_bytes, loop.lds_bytes_per_fma) == (16, 0, 8)
    assert report.hot_loop(SASS.replace("FFMA", "IMAD")) is None
    # the first loop alone: the never-executed placeholder issues, so it counts
    first = report.hot_loop(SASS[:SASS.index(".L_x_2")])
    assert (first.instructions, first.fmas, first.predicated_off, first.peeled_copies) == (8, 2, 1, 1)
    assert (first.lds_bytes, first.sts_bytes) == (16 + 8 + 4, 4)
    # an m8n8k4 DMMA is 256 products over 32 lanes, however nvdisasm spells it
    assert report._fmas_per_lane("DMMA.884") == report._fmas_per_lane("DMMA.8x8x4") == 8
    (insn,) = report.parse_sass("        /*0100*/                   DMMA.8x8x4 R4, R8, R10, R4 ;")
    assert insn[2] == "DMMA.8x8x4"
    assert report._fmas_per_lane("FFMA.FTZ") == 1 and report._fmas_per_lane("IMAD") == 0


def test_untuned_picks_follow_the_dispatcher():
    picks = report.untuned_picks()
    assert picks["float32"] == configs.untuned_config(configs.F32, 4096, 4096, 1, 132, 90)
    assert picks["float64"] == configs.untuned_config(configs.F64, 4096, 4096, 1, 132, 90)


@needs_tools
def test_untuned_float32_pick_meets_the_static_target():
    pick = report.untuned_picks()["float32"]
    a = report.analyse(pick, configs.F32, "NN", 90)
    print(f"\n{a.row()}\n{a.loop.counts}")
    assert a.resources.spill_bytes == 0 and a.resources.stack_bytes == 0, a.row()
    assert a.loop is not None and a.loop.nested_loops == 0, a.row()
    assert a.loop.fma_share >= 0.90, a.row()
    assert a.resources.blocks_per_sm >= 2, a.row()
    assert a.loop.lds_bytes_per_fma < 1.0, a.row()  # an 8x16 lane tile: 0.75 B of shared memory per FFMA


@needs_tools
def test_report_cli_writes_json_sass_and_index(tmp_path, capsys):
    report.main(["--cc", "90", "--rung", "smem_tiled", "--json", str(tmp_path / "r.json"),
                 "--sass-dir", str(tmp_path / "sass")])
    printed = capsys.readouterr().out
    assert "untuned float32 pick for 4096^3 NN on an H100" in printed and "share=" in printed
    doc = json.loads((tmp_path / "r.json").read_text())
    rows = doc["variants"]
    assert rows and {r["rung"] for r in rows} == {"smem_tiled"} and all(r["cc"] == 90 for r in rows)
    assert all(r["hot_loop"]["fmas"] > 0 and 0 < r["hot_loop"]["fma_share"] < 1 for r in rows)
    index = json.loads((tmp_path / "sass" / "index.json").read_text())
    picks = report.untuned_picks()
    for name in ("float32", "float64"):
        entry = index["untuned"][name]
        assert entry["config"] == picks[name].label()
        assert "FFMA" in (tmp_path / "sass" / entry["sass"]).read_text() or name == "float64"
        assert doc["untuned_4096"][name]["config"] == picks[name].label()
    assert all((tmp_path / "sass" / f).is_file() for f in index["variants"])
