"""Timing and memory helpers shared by the profiler: warm-up, repeats, median and IQR."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Stats:
    """Seconds over ``runs`` timed calls (after ``warmup`` untimed ones)."""

    median_s: float
    q1_s: float
    q3_s: float
    iqr_s: float
    min_s: float
    max_s: float
    mean_s: float
    runs: int
    warmup: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def stats_of(samples: list[float], warmup: int = 0) -> Stats:
    values = np.asarray(samples, dtype=np.float64)
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return Stats(
        median_s=float(median),
        q1_s=float(q1),
        q3_s=float(q3),
        iqr_s=float(q3 - q1),
        min_s=float(values.min()),
        max_s=float(values.max()),
        mean_s=float(values.mean()),
        runs=int(values.size),
        warmup=warmup,
    )


def measure(fn: Callable[[], Any], *, warmup: int, repeats: int) -> Stats:
    """Call ``fn`` ``warmup`` times untimed, then ``repeats`` times timed."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return stats_of(samples, warmup)


def peak_rss_mb() -> float:
    """This process's peak resident set size so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def current_rss_mb() -> float | None:
    try:
        import psutil
    except ImportError:
        return None
    return psutil.Process(os.getpid()).memory_info().rss / (1024 * 1024)


def device_memory_mb() -> dict[str, Any] | None:
    """Used and total memory of each NVIDIA GPU (nvidia-smi), or None without one."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=index,name,memory.used,memory.total",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    gpus = []
    for line in out.strip().splitlines():
        index, name, used, total = (part.strip() for part in line.split(","))
        gpus.append(
            {"index": int(index), "name": name, "used_mb": float(used), "total_mb": float(total)}
        )
    return {"gpus": gpus} if gpus else None
