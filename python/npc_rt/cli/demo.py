"""``npc-rt demo``: one full NPC correction on the shipped demo engine with the local judge."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run one full NPC correction on the bundled demo engine (local judge, CPU)",
        description=(
            "Runs generate -> verify -> caption -> propose -> rank -> regenerate on a tiny FLUX "
            "engine shipped with npc_rt, judged by the embedded detector-based judge, and writes "
            "a run directory with run.json, the images and a contact sheet. The demo engine has "
            "RANDOM weights: its images are noise-like by design. For real use, export a model "
            "(npc-rt export) and run npc-rt correct --engine DIR --judge openai ..."
        ),
    )
    parser.add_argument("--out", type=Path, help="run directory (default: runs/demo-<time>)")
    parser.add_argument("--prompt", help="prompt (default: 'a photo of two cats')")
    parser.add_argument("--seed", type=int, help="seed (default 0)")
    parser.add_argument("--k", type=int, default=5, help="candidate negatives (default 5)")
    parser.add_argument("--mode", choices=("batched", "sequential"), default="batched")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from npc_rt.cli.correct import summarize
    from npc_rt.demo import DEMO_PROMPT, DEMO_SEED, run_demo

    def progress(message: str) -> None:
        print(f"npc-rt demo: {message}", file=sys.stderr, flush=True)

    result = run_demo(
        args.out,
        prompt=args.prompt or DEMO_PROMPT,
        seed=DEMO_SEED if args.seed is None else args.seed,
        k=args.k,
        mode=args.mode,
        progress=None if args.quiet else progress,
    )
    summary = summarize(result)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    run_dir = result.run_dir
    print(f"prompt: {result.prompt!r}  seed: {result.seed}")
    print(f"status: {summary['status']}  mode: {summary['mode']} (M = {summary['batch_size']})")
    print(f"original verdict: {result.original.verdict.reason}")
    for attempt in result.attempts:
        v = attempt.verdict
        print(f"  attempt {attempt.index}: negative {attempt.negative!r} -> correct={v.correct}")
    chosen = summary["chosen"]
    print(
        f"chosen: {chosen['image']} (negative {chosen['negative']!r}, score {chosen['score']:.3f})"
    )
    print(f"total: {summary['timings'].get('total', 0.0):.2f}s")
    print(f"run directory: {run_dir}")
    if run_dir is not None:
        print(f"contact sheet: {Path(run_dir) / 'contact_sheet.png'}")
    print(
        "note: the demo engine has random weights; its images are not meant to look like anything."
    )
    return 0
