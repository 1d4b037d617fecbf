"""``npc-rt correct``: one NPC correction (generate, verify, propose, rank, regenerate) into a run
directory. Thin over ``npc_rt.loop.correct``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from npc_rt.cli._judge_args import add_judge_options, judge_options
from npc_rt.errors import InvalidInputError

# Exit status when the run finished but a judge failed (unknown verdict or an outage mid-run):
# the run directory holds what was done. 0: finished; 1: error (nothing usable).
EXIT_JUDGE_FAILURE = 3
_FINISHED = ("accepted_original", "accepted", "not_accepted")


def register(subparsers: argparse._SubParsersAction) -> None:
    from npc_rt.judges.factory import judge_kinds

    parser = subparsers.add_parser(
        "correct",
        help="run NPC on one prompt and seed, writing a run directory",
        description=(
            "Generate an image, ask the verifier; if it is wrong, caption it, propose K negative "
            "prompts, rank them with the salient text-space score and regenerate with them "
            "(batched: M candidates per generation call; sequential: one at a time). Writes "
            "original.png, attempt_XX.png, contact_sheet.png and run.json into --out. Exit status "
            f"0 when the run finished (accepted or not), {EXIT_JUDGE_FAILURE} when a judge failed "
            "(the run directory keeps what was done), 1 on errors."
        ),
    )
    parser.add_argument("--engine", type=Path, required=True, help="exported engine directory")
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="run directory to write")
    parser.add_argument(
        "--metadata",
        help="JSON checklist for the verifier (GenEval-style include/exclude), or @FILE",
    )

    judge = parser.add_argument_group("judges")
    judge.add_argument("--judge", choices=judge_kinds(), default="openai", help="judge kind")
    add_judge_options(judge)

    loop = parser.add_argument_group("correction")
    loop.add_argument("--k", type=int, default=5, help="candidate negatives (default 5)")
    loop.add_argument("--mode", choices=("batched", "sequential"), default="batched")
    loop.add_argument(
        "--batch-size", type=int, default=None, help="M for batched mode (default: engine's max)"
    )
    loop.add_argument(
        "--speculative-caption",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="caption while the verifier judges the original (default: on in batched mode)",
    )
    loop.add_argument("--steps", type=int, help="sampling steps (default: the engine's)")
    loop.add_argument("--height", type=int)
    loop.add_argument("--width", type=int)
    loop.add_argument("--guidance", type=float)
    loop.add_argument("--true-cfg", type=float)
    loop.add_argument("--negative-steps", type=int)
    loop.add_argument("--provider", action="append", default=None, help="ONNX Runtime provider")

    out = parser.add_argument_group("output")
    out.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    out.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from npc_rt.judges.factory import build_judges
    from npc_rt.loop import correct

    judges = build_judges(args.judge, **judge_options(args))
    engine = _load_engine(args.engine, args.provider)
    params = {
        name: getattr(args, name)
        for name in ("steps", "height", "width", "guidance", "true_cfg", "negative_steps")
        if getattr(args, name) is not None
    }

    def progress(message: str) -> None:
        print(f"npc-rt correct: {message}", file=sys.stderr, flush=True)

    result = correct(
        args.prompt,
        args.seed,
        engine,
        judges,
        k=args.k,
        mode=args.mode,
        batch_size=args.batch_size,
        out_dir=args.out,
        params=params or None,
        metadata=_metadata(args.metadata),
        progress=None if args.quiet else progress,
        speculative_caption=args.speculative_caption,
    )
    summary = summarize(result)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        chosen = summary["chosen"]
        print(f"status: {summary['status']}")
        print(f"mode: {summary['mode']} (M = {summary['batch_size']})")
        print(
            f"chosen: {chosen['image']}  negative: {chosen['negative']!r}  "
            f"accepted: {chosen['accepted']}  score: {chosen['score']:.3f}"
        )
        for error in summary["errors"]:
            print(f"error: {error}")
        print(f"total: {summary['timings'].get('total', 0.0):.2f}s  run: {args.out}")
    return 0 if result.status in _FINISHED else EXIT_JUDGE_FAILURE


def summarize(result: Any) -> dict[str, Any]:
    chosen = result.chosen
    return {
        "status": result.status,
        "accepted": result.accepted,
        "mode": result.mode,
        "batch_size": result.batch_size,
        "run_dir": str(result.run_dir) if result.run_dir else None,
        "chosen": {
            "image": str(chosen.path) if chosen.path else None,
            "negative": chosen.negative,
            "rank": chosen.rank,
            "accepted": chosen.verdict.accepted,
            "score": chosen.verdict.score,
            "reason": chosen.verdict.reason,
        },
        "candidates": list(result.candidates),
        "attempts": len(result.attempts),
        "timings": {k: round(v, 4) for k, v in result.timings.items()},
        "errors": list(result.errors),
    }


def _metadata(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    text = value
    if value.startswith("@"):
        try:
            text = Path(value[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInputError(f"cannot read --metadata file {value[1:]}: {exc}") from exc
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"--metadata is not valid JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise InvalidInputError("--metadata must be a JSON object")
    return parsed


def _load_engine(path: Path, providers: list[str] | None) -> Any:
    from npc_rt.pipeline import load_engine

    return load_engine(path, providers=providers)
