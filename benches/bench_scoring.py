"""Salient scoring: npc_rt (Rust, batched) vs vectorized numpy vs a per-candidate Python loop.

Workload (defaults, the issue's): P = 64 prompts x K = 8 candidates, D = 4096, each prompt with
Q = 4 quantity phrases and O = 2 object phrases (``two cats`` -> two, 2, ... / cat, cats). Every
peer computes the same numbers (checked before timing).

Three sections, each with the three peers doing the same work:
- scoring: from pooled float32 embeddings to (s_qty, s_obj, s_cand, score, order). This is the
  figure the targets are stated for (>= 20x the loop, >= 2x vectorized numpy).
- pooling: masked mean of hidden states [N, L, D] (N = P * (1 + 2K + Q + O) texts) to [N, D].
- pooling + scoring: both, as rank_candidates runs them after the encoder call.

Peers: ``rust`` is npc_rt.scoring (mean_pool, salient_scores_batch: the public Python functions,
wrapper overhead included); ``numpy`` is the best vectorized numpy we could write (pooling with
one batched matmul; scoring per prompt with matrix ops, since the data are ragged in general);
``numpy-uniform`` additionally exploits that this workload has equal K, Q, O for every prompt
(one [P, K, D] computation, not possible for ragged input); ``loop`` is the reference's style:
one candidate at a time, one numpy cos per pair, pooling each text alone.

Run after ``maturin develop --release``:  python benches/bench_scoring.py [--repeats N] ...
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from npc_rt.scoring import mean_pool, salient_scores_batch


@dataclass(frozen=True)
class Workload:
    prompts: int
    cands: int
    qtys: int
    objs: int
    dim: int
    seq_len: int
    hidden_dtype: str

    @property
    def texts_per_prompt(self) -> int:
        return 1 + 2 * self.cands + self.qtys + self.objs


# -- data ----------------------------------------------------------------------------------------


def make_hidden(w: Workload, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n = w.prompts * w.texts_per_prompt
    hidden = rng.standard_normal((n, w.seq_len, w.dim), dtype=np.float32).astype(w.hidden_dtype)
    lengths = rng.integers(1, w.seq_len + 1, size=n)
    mask = (np.arange(w.seq_len)[None, :] < lengths[:, None]).astype(np.int64)
    return hidden, mask


def split_pooled(w: Workload, pooled: np.ndarray) -> dict[str, np.ndarray]:
    """Rows per prompt: [prompt, K cands, K cand phrases, Q qtys, O objs] -> grouped arrays."""
    per = pooled.reshape(w.prompts, w.texts_per_prompt, w.dim)
    k, q = w.cands, w.qtys
    return {
        "p": np.ascontiguousarray(per[:, 0]),
        "c": np.ascontiguousarray(per[:, 1 : 1 + k]).reshape(-1, w.dim),
        "f": np.ascontiguousarray(per[:, 1 + k : 1 + 2 * k]).reshape(-1, w.dim),
        "q": np.ascontiguousarray(per[:, 1 + 2 * k : 1 + 2 * k + q]).reshape(-1, w.dim),
        "o": np.ascontiguousarray(per[:, 1 + 2 * k + q :]).reshape(-1, w.dim),
    }


def offsets(count: int, per: int) -> np.ndarray:
    return np.arange(0, count * per + 1, per, dtype=np.int64)


# -- peers: pooling -------------------------------------------------------------------------------


def pool_numpy(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask.astype(np.float32)
    summed = (m[:, None, :] @ hidden.astype(np.float32, copy=False))[:, 0, :]
    return summed / m.sum(axis=1, keepdims=True)


def pool_loop(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.stack(
        [
            h[m.astype(bool)].astype(np.float32).mean(axis=0)
            for h, m in zip(hidden, mask, strict=True)
        ]
    )


# -- peers: scoring -------------------------------------------------------------------------------


def _unit_rows(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 0)


def score_rust(w: Workload, g: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    r = salient_scores_batch(
        g["p"],
        g["c"],
        g["f"],
        g["q"],
        g["o"],
        cand_offsets=offsets(w.prompts, w.cands),
        qty_offsets=offsets(w.prompts, w.qtys),
        obj_offsets=offsets(w.prompts, w.objs),
    )
    return r.score, r.order


def score_numpy(w: Workload, g: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Vectorized per prompt (the ragged-capable form): matrix ops over its K candidates."""
    k, q, o = w.cands, w.qtys, w.objs
    qn, on, fn = _unit_rows(g["q"]), _unit_rows(g["o"]), _unit_rows(g["f"])
    scores, orders = [], []
    for i in range(w.prompts):
        delta = _unit_rows(g["p"][i] - g["c"][i * k : (i + 1) * k])
        s_cand = np.einsum("kd,kd->k", delta, fn[i * k : (i + 1) * k])
        s_qty = (delta @ qn[i * q : (i + 1) * q].T).mean(axis=1)
        s_obj = (delta @ on[i * o : (i + 1) * o].T).mean(axis=1)
        score = s_qty + s_obj - s_cand
        scores.append(score)
        orders.append(np.argsort(-score, kind="stable"))
    return np.concatenate(scores), np.concatenate(orders)


def score_numpy_uniform(w: Workload, g: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Fully batched over prompts; valid only because K, Q, O are equal for every prompt."""
    p, k, d = w.prompts, w.cands, w.dim
    delta = _unit_rows(g["p"][:, None, :] - g["c"].reshape(p, k, d))
    s_cand = np.einsum("pkd,pkd->pk", delta, _unit_rows(g["f"]).reshape(p, k, d))
    s_qty = (delta @ _unit_rows(g["q"]).reshape(p, w.qtys, d).transpose(0, 2, 1)).mean(axis=2)
    s_obj = (delta @ _unit_rows(g["o"]).reshape(p, w.objs, d).transpose(0, 2, 1)).mean(axis=2)
    score = s_qty + s_obj - s_cand
    return score.reshape(-1), np.argsort(-score, axis=1, kind="stable").reshape(-1)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b)) / denom if denom > 0 else 0.0


def score_loop(w: Workload, g: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The reference's style: one candidate at a time, one cos per pair."""
    k, q, o = w.cands, w.qtys, w.objs
    scores, orders = [], []
    for i in range(w.prompts):
        prompt_scores = []
        for j in range(i * k, (i + 1) * k):
            delta = g["p"][i] - g["c"][j]
            s_cand = _cos(delta, g["f"][j])
            s_qty = sum(_cos(delta, x) for x in g["q"][i * q : (i + 1) * q]) / q
            s_obj = sum(_cos(delta, x) for x in g["o"][i * o : (i + 1) * o]) / o
            prompt_scores.append(s_qty + s_obj - s_cand)
        ranked = sorted(range(k), key=lambda j: -prompt_scores[j])
        scores.extend(prompt_scores)
        orders.extend(ranked)
    return np.array(scores), np.array(orders)


SCORERS: dict[str, Callable[[Workload, dict[str, np.ndarray]], Any]] = {
    "rust": score_rust,
    "numpy": score_numpy,
    "numpy-uniform": score_numpy_uniform,
    "loop": score_loop,
}
POOLERS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "rust": mean_pool,
    "numpy": pool_numpy,
    "numpy-uniform": pool_numpy,
    "loop": pool_loop,
}


# -- timing --------------------------------------------------------------------------------------


def timed(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> tuple[float, float]:
    """(min, median) seconds over ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return min(samples), statistics.median(samples)


def report(title: str, results: dict[str, tuple[float, float]]) -> None:
    print(f"\n{title}")
    base = results["rust"][1]
    print(f"  {'peer':<14} {'median ms':>10} {'min ms':>9} {'rust speed-up':>14}")
    for name, (best, median) in results.items():
        print(f"  {name:<14} {median * 1e3:10.2f} {best * 1e3:9.2f} {median / base:13.1f}x")


def check_agreement(w: Workload, hidden: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    pooled = {name: pool(hidden, mask) for name, pool in POOLERS.items()}
    for name, p in pooled.items():
        np.testing.assert_allclose(p, pooled["rust"], rtol=1e-4, atol=1e-5, err_msg=f"pool {name}")
    groups = split_pooled(w, pooled["rust"])
    want_score, want_order = score_rust(w, groups)
    for name, scorer in SCORERS.items():
        score, order = scorer(w, groups)
        np.testing.assert_allclose(score, want_score, rtol=1e-4, atol=1e-5, err_msg=f"score {name}")
        # Orders may differ only where scores tie within float32 noise; random data has no ties.
        np.testing.assert_array_equal(order, want_order, err_msg=f"order {name}")
    return groups


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--cands", type=int, default=8)
    ap.add_argument("--qtys", type=int, default=4)
    ap.add_argument("--objs", type=int, default=2)
    ap.add_argument("--dim", type=int, default=4096)
    ap.add_argument("--seq-len", type=int, default=32)
    ap.add_argument("--hidden-dtype", choices=("float32", "float16"), default="float32")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--loop-repeats", type=int, default=3, help="repeats of the slow loop peer")
    args = ap.parse_args(argv)
    w = Workload(
        args.prompts, args.cands, args.qtys, args.objs, args.dim, args.seq_len, args.hidden_dtype
    )
    rng = np.random.default_rng(0)
    hidden, mask = make_hidden(w, rng)
    print(
        f"salient scoring bench: {w.prompts} prompts x {w.cands} candidates, Q={w.qtys}, O={w.objs}, "
        f"D={w.dim}; pooling {hidden.shape[0]} texts x L={w.seq_len} ({w.hidden_dtype}, "
        f"{hidden.nbytes / 2**20:.0f} MiB); {os.cpu_count()} CPUs, numpy {np.__version__}"
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"1-min load average before timing: {load:.1f} (other processes slow every peer)")
    groups = check_agreement(w, hidden, mask)
    print("all peers agree (scores rtol 1e-4, identical rankings)")

    def reps(name: str) -> int:
        return args.loop_repeats if name == "loop" else args.repeats

    scoring = {n: timed(lambda s=s: s(w, groups), reps(n)) for n, s in SCORERS.items()}
    report("scoring (pooled embeddings -> scores + ranking)", scoring)
    pool_reps = max(3, args.repeats // 3)
    pooling = {
        n: timed(lambda p=p: p(hidden, mask), args.loop_repeats if n == "loop" else pool_reps)
        for n, p in POOLERS.items()
        if n != "numpy-uniform"
    }
    report("pooling (hidden states -> pooled embeddings)", pooling)

    def both(name: str) -> Callable[[], Any]:
        return lambda: SCORERS[name](w, split_pooled(w, POOLERS[name](hidden, mask)))

    combined = {n: timed(both(n), args.loop_repeats if n == "loop" else pool_reps) for n in SCORERS}
    report("pooling + scoring", combined)
    s = scoring
    print(
        f"\nscoring targets: rust vs loop {s['loop'][1] / s['rust'][1]:.1f}x (target >= 20x), "
        f"vs numpy {s['numpy'][1] / s['rust'][1]:.1f}x and vs numpy-uniform "
        f"{s['numpy-uniform'][1] / s['rust'][1]:.1f}x (target >= 2x)"
    )


if __name__ == "__main__":
    main()
