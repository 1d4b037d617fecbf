"""NPC loop: end-to-end latency of one correction, batched vs sequential regeneration (K = 5).

Peers, in the same run, same prompt, seed, engine and judges:
- ``sequential``: the reference: one candidate per generate() call, verified one after another,
  caption asked for after the verdict;
- ``batched``: the default: the top M candidates in one generate() call, verified concurrently,
  caption asked for while the original is being verified (speculative caption);
- ``batched-nospec``: batched regeneration alone (no speculative caption), to show each part.

Judges: the three roles over HTTP against the tests' loopback OpenAI-compatible server with a
fixed latency per request (default 0.3 s) and a verifier that never accepts, so every candidate is
generated and judged (the worst case the target is about). Generator: the tiny exported FLUX engine
(built once into a cache folder with the export code, or --engine DIR), or with --generator fake a
fake whose cost per call and per image is given (clearly labelled: no real sampling).

Printed: the median end-to-end latency of each peer over --repeats runs (after one warm-up), its
stage breakdown, and the ratios batched / sequential (target <= 0.5) and batched-nospec /
sequential.

Run:  python benches/bench_loop.py [--engine DIR] [--judge-latency 0.3] [--repeats 3]
      python benches/bench_loop.py --generator fake --gen-call-s 0.4 --gen-image-s 0.15
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for extra in (REPO / "tests", REPO / "export"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from fixtures.openai_server import FakeOpenAIServer, reply, verdict  # noqa: E402
from npc_rt.judges.factory import build_judges  # noqa: E402
from npc_rt.loop import correct  # noqa: E402

PROMPT = "a photo of two cats on a red sofa"
CANDIDATES = ["grey cat", "blue sofa", "lamp", "cushion", "dog"]
K = 5
PEERS = {
    "sequential": {"mode": "sequential", "speculative_caption": False},
    "batched": {"mode": "batched", "speculative_caption": True},
    "batched-nospec": {"mode": "batched", "speculative_caption": False},
}
STAGES = (
    "generate_original",
    "verify_original",
    "caption",
    "propose",
    "rank",
    "regenerate",
    "verify_attempts",
)


def tiny_engine(cache: Path) -> Path:
    """The tests' tiny FLUX pipeline exported once into ``cache`` (needs the export extra)."""
    engine = cache / "engine"
    if (engine / "manifest.json").exists():
        return engine
    from npc_rt_export import ExportOptions, export_pipeline
    from npc_rt_export.tiny.flux import TINY_FLUX_EXPORT, build_tiny_flux_pipeline

    print(f"building the tiny FLUX engine into {cache} (once) ...", file=sys.stderr)
    pipeline = build_tiny_flux_pipeline(cache / "pipeline", seed=0)
    export_pipeline(pipeline, engine, ExportOptions(**TINY_FLUX_EXPORT))
    return engine


def make_generator(args: argparse.Namespace):
    if args.generator == "fake":
        from fixtures.loop_fakes import FakeGenerator

        gen = FakeGenerator(
            max_batch=args.batch_size or 8, call_s=args.gen_call_s, image_s=args.gen_image_s
        )
        label = f"FAKE generator (no sampling): {args.gen_call_s:g} s per call + {args.gen_image_s:g} s per image"
        return gen, label, None
    from npc_rt.pipeline import load_engine

    engine_dir = args.engine or tiny_engine(Path(tempfile.gettempdir()) / "npc_rt_bench_tiny_flux")
    gen = load_engine(engine_dir)
    params = {"steps": args.steps} if args.steps else None
    p = gen.default_params
    label = (
        f"tiny exported FLUX engine {engine_dir} ({p.height}x{p.width}, "
        f"{args.steps or p.steps} steps, ONNX Runtime CPU)"
    )
    return gen, label, params


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--engine", type=Path, help="engine directory (default: tiny FLUX, built once)"
    )
    parser.add_argument("--generator", choices=("engine", "fake"), default="engine")
    parser.add_argument(
        "--gen-call-s", type=float, default=0.4, help="fake: seconds per generate call"
    )
    parser.add_argument("--gen-image-s", type=float, default=0.15, help="fake: seconds per image")
    parser.add_argument("--steps", type=int, help="sampling steps (default: the engine's)")
    parser.add_argument(
        "--judge-latency", type=float, default=0.3, help="seconds per judge request"
    )
    parser.add_argument("--batch-size", type=int, help="M (default: the engine's max)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    generator, label, params = make_generator(args)
    os.environ.setdefault("NPC_BENCH_KEY", "bench-key")
    with FakeOpenAIServer() as server:
        delay = args.judge_latency
        server.set_default("vlm", verdict(0, 0.3, "only one cat", delay=delay))
        server.set_default(
            "cap", reply({"caption": "One grey cat on a blue sofa by a lamp."}, delay=delay)
        )
        server.set_default("llm", reply({"candidates": CANDIDATES}, delay=delay))
        judges = build_judges(
            "openai", base_url=server.base_url, api_key_env="NPC_BENCH_KEY", verifier_model="vlm",
            captioner_model="cap", proposer_model="llm", timeout=30, retries=0,
        )  # fmt: skip

        def run(peer: str):
            options = dict(PEERS[peer])
            if options["mode"] == "batched" and args.batch_size:
                options["batch_size"] = args.batch_size
            with tempfile.TemporaryDirectory() as out:
                t0 = time.perf_counter()
                result = correct(
                    PROMPT, 7, generator, judges, k=K, params=params, out_dir=out, **options
                )
                total = time.perf_counter() - t0
            assert result.status == "not_accepted" and len(result.attempts) == K, result.errors
            return total, result

        for peer in PEERS:  # warm-up: sessions, caches, connections
            run(peer)
        totals: dict[str, list[float]] = {peer: [] for peer in PEERS}
        stages: dict[str, dict[str, list[float]]] = {
            peer: {s: [] for s in STAGES} for peer in PEERS
        }
        m = {}
        for _ in range(args.repeats):
            for peer in PEERS:  # interleaved so drift hits every peer alike
                total, result = run(peer)
                totals[peer].append(total)
                m[peer] = result.batch_size
                for stage in STAGES:
                    stages[peer][stage].append(result.timings.get(stage, 0.0))

    print("NPC loop, one correction, K = 5, no candidate accepted")
    print(f"generator: {label}")
    print(f"judges: loopback OpenAI-compatible HTTP server, {args.judge_latency:g} s per request")
    print(f"repeats: {args.repeats} (median shown), CPU cores: {os.cpu_count()}")
    print()
    header = f"{'peer':<16}{'M':>3}{'total s':>10}" + "".join(f"{s[:12]:>14}" for s in STAGES)
    print(header)
    for peer in PEERS:
        row = f"{peer:<16}{m[peer]:>3}{statistics.median(totals[peer]):>10.3f}"
        row += "".join(f"{statistics.median(stages[peer][s]):>14.3f}" for s in STAGES)
        print(row)
    seq = statistics.median(totals["sequential"])
    print("(batched: the caption column overlaps verify_original; stage times exclude records I/O)")
    print()
    ratios = {}
    for peer in ("batched", "batched-nospec"):
        ratios[peer] = ratio = statistics.median(totals[peer]) / seq
        verdict_text = "meets" if ratio <= 0.5 else "misses"
        print(f"ratio {peer} / sequential: {ratio:.3f}  ({verdict_text} the <= 0.5 target)")
    return ratios


if __name__ == "__main__":
    main()
