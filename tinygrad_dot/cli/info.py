"""``tinygrad-dot info``: what this installation can use. Every probe is guarded:
a missing library, driver or GPU is reported, never raised."""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path

HELP = "versions, GPUs, kernel paths and cache locations"
EPILOG = """examples:
  tinygrad-dot info
  tinygrad-dot info --json > info.json
"""


def _unavailable(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"unavailable ({type(exc).__name__}{': ' + text[:160] if text else ''})"


def _probe(fn):
    """fn() or a short 'unavailable (...)' string; info must never raise."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - any failure is something to report, not to raise
        return _unavailable(exc)


def _cuda_version(code: int) -> str:
    return f"{code // 1000}.{code % 1000 // 10}"


def _folder_size(path: Path) -> dict:
    """Files and bytes under ``path`` (a single file counts as one)."""
    if path.is_file():
        return {"path": str(path), "exists": True, "files": 1, "bytes": path.stat().st_size}
    if not path.is_dir():
        return {"path": str(path), "exists": False, "files": 0, "bytes": 0}
    files = [p for p in path.rglob("*") if p.is_file()]
    return {"path": str(path), "exists": True, "files": len(files), "bytes": sum(p.stat().st_size for p in files)}


def _cupy_facts(facts: dict) -> None:
    from tinygrad_dot._extras import cuda_hint

    try:
        import cupy
    except ImportError:
        facts["cupy"] = f"not installed ({cuda_hint()})"
        facts["gpus"] = []
        return
    except Exception as exc:  # noqa: BLE001 - installed but broken (e.g. missing CUDA libraries)
        facts["cupy"] = facts["gpus"] = _unavailable(exc)
        return
    facts["cupy"] = cupy.__version__
    runtime = cupy.cuda.runtime
    facts["cuda_runtime"] = _probe(lambda: _cuda_version(runtime.runtimeGetVersion()))
    facts["cuda_driver"] = _probe(lambda: _cuda_version(runtime.driverGetVersion()))
    count = _probe(runtime.getDeviceCount)
    facts["gpus"] = [_probe(lambda i=i: _gpu(runtime, i)) for i in range(count)] if isinstance(count, int) else count


def _gpu(runtime, index: int) -> dict:
    from tinygrad_dot.gemm import configs

    props = runtime.getDeviceProperties(index)
    cc = props["major"] * 10 + props["minor"]
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    return {"index": index, "name": name, "compute_capability": f"{props['major']}.{props['minor']}",
            "sms": props["multiProcessorCount"], "memory_gib": round(props["totalGlobalMem"] / 2**30, 1),
            "kernels": [r.name for r in configs.RUNGS.values() if cc >= r.min_sm]}


def _nvrtc() -> str:
    from tinygrad_dot._extras import pip_install
    from tinygrad_dot.gemm import nvrtc

    if not nvrtc.available():
        return f"not found ({pip_install('nvidia-cuda-nvrtc-cu12')})"
    major, minor = nvrtc.version()
    return f"{major}.{minor} ({nvrtc.library_path()})"


def _kernels() -> dict:
    from tinygrad_dot.gemm import configs, sources

    root = sources.kernels_dir()
    return {"path": str(root), "files": len(sources.kernel_files(root)), "sha256": sources.kernels_sha256(root),
            "rungs": {r.name: f"sm_{r.min_sm}+" if r.min_sm else "any GPU" for r in configs.RUNGS.values()}}


def _emulated() -> str:
    """Device "emu" needs only a host C++ compiler (its version, without building anything)."""
    from tinygrad_dot.runtime import emulated

    return f"available ({emulated.compiler_version(emulated.compiler())})"


def _cache_root() -> Path:
    from tinygrad_dot.gemm import sources

    return sources.cache_root()


def _optional(distribution: str) -> str:
    """Installed version without importing it (matplotlib alone takes a second to import)."""
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def collect() -> dict:
    import numpy as np

    import tinygrad_dot as td

    facts = {"tinygrad_dot": td.__version__, "package": str(Path(td.__file__).parent),
             "python": platform.python_version(), "platform": platform.platform(), "numpy": np.__version__}
    _cupy_facts(facts)
    facts["nvrtc"] = _probe(_nvrtc)
    facts["emu"] = _probe(_emulated)
    facts["kernels"] = _probe(_kernels)
    root = _probe(_cache_root)
    facts["cache"] = _probe(lambda: {**_folder_size(root), "env TINYGRAD_DOT_CACHE_DIR":
                                     os.environ.get("TINYGRAD_DOT_CACHE_DIR", "unset"),
                                     "parts": {p.name + ("/" if p.is_dir() else ""): _folder_size(p) for p in sorted(root.iterdir())}
                                     if root.is_dir() else {}})
    facts["optional"] = {m: _optional(m) for m in ("scikit-learn", "scipy", "matplotlib", "dask", "distributed")}
    return facts


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def render(f: dict) -> str:
    lines = [f"tinygrad_dot {f['tinygrad_dot']}  ({f['package']})",
             f"Python {f['python']} on {f['platform']}",
             f"NumPy        {f['numpy']}",
             f"CuPy         {f['cupy']}"]
    if "cuda_runtime" in f:
        lines.append(f"CUDA         runtime {f['cuda_runtime']}, driver {f['cuda_driver']}")
    lines.append(f"NVRTC        {f['nvrtc']}")
    lines.append(f"Device emu   {f['emu']}  (the CUDA kernels emulated on the CPU)")
    gpus = f["gpus"]
    if isinstance(gpus, str) or not gpus:
        lines.append(f"GPUs         none usable{': ' + gpus if isinstance(gpus, str) else ''}")
    for g in gpus if isinstance(gpus, list) else []:
        lines.append(f"GPU {g['index']}        {g['name']}, compute capability {g['compute_capability']}, "
                     f"{g['sms']} SMs, {g['memory_gib']} GiB; kernels: {', '.join(g['kernels'])}"
                     if isinstance(g, dict) else f"GPU          {g}")
    k = f["kernels"]
    if isinstance(k, dict):
        lines.append(f"Kernels      {k['path']} ({k['files']} files, sha256 {k['sha256'][:12]})")
        lines.extend(f"  {name:17s} {need}" for name, need in k["rungs"].items())
    else:
        lines.append(f"Kernels      {k}")
    c = f["cache"]
    if isinstance(c, dict):
        state = f"{c['files']} files, {_size(c['bytes'])}" if c["exists"] else "empty (not created yet)"
        lines.append(f"Cache        {c['path']}: {state}  (TINYGRAD_DOT_CACHE_DIR={c['env TINYGRAD_DOT_CACHE_DIR']})")
        lines.extend(f"  {name:17s} {p['files']} files, {_size(p['bytes'])}" for name, p in c["parts"].items())
    else:
        lines.append(f"Cache        {c}")
    lines.append("Optional     " + ", ".join(f"{m} {v}" for m, v in f["optional"].items()))
    return "\n".join(lines)


def run(args) -> int:
    facts = collect()
    print(json.dumps(facts, indent=2) if args.json else render(facts))
    return 0


def add_parser(sub, formatter) -> None:
    p = sub.add_parser("info", help=HELP, description=HELP + ".", epilog=EPILOG, formatter_class=formatter)
    p.add_argument("--json", action="store_true", help="print the facts as JSON")
    p.set_defaults(run=run)
