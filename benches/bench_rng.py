"""npc_rt.randn vs torch.randn (CPU generator), same shapes, same process, same run.

Prints per-shape median latency of each and the ratio torch/npc_rt (above 1: npc_rt faster), and
checks on the way that the outputs are bit-identical (a benchmark of wrong numbers is worthless).
Build the extension with ``maturin develop --release`` first.

    python benches/bench_rng.py [--repeats 30]
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import npc_rt
import numpy as np
import torch

SHAPES = [(15,), (1024,), (1, 16, 64, 64), (1, 4096, 64), (1, 16, 128, 128), (4, 16, 128, 128)]
DTYPES = {"float32": torch.float32, "float16": torch.float16}


SEED = 1234


def torch_randn(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    generator = torch.Generator("cpu").manual_seed(SEED)
    return torch.randn(shape, generator=generator, dtype=dtype)


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    kernel = "avx2" if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512") else "generic"
    print(
        f"torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}), "
        f"torch threads {torch.get_num_threads()}, npc_rt kernel={kernel}"
    )
    print(f"{'shape':>20} {'dtype':>8} {'torch ms':>10} {'npc_rt ms':>10} {'ratio':>7}")
    for dtype, tdtype in DTYPES.items():
        for shape in SHAPES:
            ours = partial(npc_rt.randn, shape, SEED, dtype, kernel)
            theirs = partial(torch_randn, shape, tdtype)
            ref = theirs().numpy()
            assert np.array_equal(ours().view(np.uint8), ref.view(np.uint8)), (shape, dtype)
            t_torch = median_seconds(theirs, args.repeats)
            t_ours = median_seconds(ours, args.repeats)
            print(
                f"{str(shape):>20} {dtype:>8} {t_torch * 1e3:10.3f} {t_ours * 1e3:10.3f} "
                f"{t_torch / t_ours:7.2f}"
            )


if __name__ == "__main__":
    main()
