"""The machine fingerprint that goes into every results file."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np

import dlbench

ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_CORETYPE",
            "OPENBLAS_L2_SIZE", "OPENBLAS_VERBOSE", "NPY_DISABLE_CPU_FEATURES")

#: Fingerprint keys whose difference makes two runs' timings not comparable.
SIGNIFICANT = ("numpy", "blas", "blas_version", "blas_arch", "threads", "cpu_model", "cpu_count", "machine")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return ""


def git_state(path: Path | None = None) -> tuple[str, bool | None]:
    """(commit, dirty) of the repository holding `path` (the current directory by default)."""
    cwd = str(path or Path.cwd())
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                                text=True, timeout=5).stdout.strip()
        if not commit:
            return "", None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                capture_output=True, text=True, timeout=5).stdout
        return commit, bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        return "", None


def blas_info() -> dict:
    """BLAS library, version, kernel architecture and thread count, as threadpoolctl reports them."""
    from threadpoolctl import threadpool_info

    pools = threadpool_info()
    blas = next((p for p in pools if p.get("user_api") == "blas"), {})
    omp = next((p for p in pools if p.get("user_api") == "openmp"), {})
    return {
        "blas": blas.get("internal_api", ""),
        "blas_version": blas.get("version") or "",
        "blas_arch": blas.get("architecture") or "",
        "blas_threads": int(blas.get("num_threads") or 0),
        "openmp_threads": int(omp.get("num_threads") or 0),
    }


def fingerprint(argv: list[str] | None = None) -> dict:
    """Versions, BLAS, CPU, OS, relevant environment variables, git state, command line and start time."""
    commit, dirty = git_state()
    fp = {
        "dlbench": dlbench.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": _version("pandas"),
        "pyarrow": _version("pyarrow"),
        **blas_info(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count() or 0,
        "machine": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "env": {k: os.environ[k] for k in ENV_VARS if k in os.environ},
        "git_commit": commit,
        "git_dirty": dirty,
        "command": " ".join(argv if argv is not None else ["dlbench", *sys.argv[1:]]),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    fp["threads"] = fp["blas_threads"]
    return fp


def significant_differences(a: dict, b: dict) -> list[str]:
    """The fingerprint keys that differ in ways that make timings incomparable."""
    return [f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in SIGNIFICANT if a.get(k) != b.get(k)]
