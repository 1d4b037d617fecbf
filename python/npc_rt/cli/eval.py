"""``npc-rt eval``: alignment accuracy with and without NPC over a prompt set (resumable)."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from npc_rt.cli._judge_args import add_judge_options
from npc_rt.cli._judge_args import judge_options as judge_options_of
from npc_rt.errors import InvalidInputError, NpcIOError

JUDGE_KINDS = ("local", "openai", "cascade")
# Options whose values must never land in the eval manifest (it is written to disk).
_SECRET_OPTIONS = ("api_key",)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="accuracy per tag with and without NPC on a GenEval-format prompt set",
        description=(
            "Run the original generation and the NPC correction for every prompt x seed, judge "
            "both, and write per-sample records, summary.json and report.md into --out. "
            "Killed and restarted with the same arguments, it continues where it stopped."
        ),
    )
    parser.add_argument(
        "metadata",
        type=Path,
        help="GenEval(++) metadata .jsonl, or a text file of prompts (one a line)",
    )
    parser.add_argument("--engine", type=Path, required=True, help="exported engine directory")
    parser.add_argument("--out", type=Path, required=True, help="eval directory (resumable)")
    parser.add_argument("--judge", choices=JUDGE_KINDS, default="local", help="judge kind")
    parser.add_argument(
        "--eval-judge",
        choices=JUDGE_KINDS,
        help=(
            "score both images with this judge's verifier instead of the loop's (GenEval's "
            "protocol: a fixed evaluator whatever judge guided NPC); same judge options"
        ),
    )
    judge = parser.add_argument_group("judge options (passed to npc_rt.judges.build_judges)")
    add_judge_options(judge)

    sampling = parser.add_argument_group("sampling")
    sampling.add_argument(
        "--images-per-prompt",
        type=int,
        default=4,
        help="seeds 0..N-1 per prompt (default 4, as GenEval)",
    )
    sampling.add_argument(
        "--seeds", type=int, nargs="+", help="explicit seeds (overrides --images-per-prompt)"
    )
    sampling.add_argument("--limit", type=int, help="only the first N prompts")
    sampling.add_argument(
        "--per-tag", type=int, help="only the first N prompts of each tag (a balanced subset)"
    )
    sampling.add_argument("--steps", type=int, help="denoising steps (default: the engine's)")
    sampling.add_argument("--size", metavar="HxW", help="image size (default: the engine's)")
    sampling.add_argument("--k", type=int, default=5, help="candidate negatives per prompt")
    sampling.add_argument("--mode", choices=("batched", "sequential"), help="regeneration mode")
    sampling.add_argument(
        "--baseline", action="store_true", help="only the original generation (no NPC)"
    )
    parser.add_argument("--no-report", action="store_true", help="skip report.md and the PNGs")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--json", action="store_true", help="print summary.json to stdout")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from npc_rt.evaluation import (
        BaselineSampler,
        CorrectionSampler,
        EvalPlan,
        RejudgedSampler,
        load_records,
        run_eval,
        seeds_for,
        write_report,
    )
    from npc_rt.evaluation.harness import print_progress

    prompts = load_eval_prompts(args.metadata, limit=args.limit, per_tag=args.per_tag)
    plan = EvalPlan(prompts=prompts, seeds=seeds_for(args.images_per_prompt, args.seeds))
    if args.k < 1:
        raise InvalidInputError(f"--k must be at least 1, got {args.k}")
    judge_options = judge_options_of(args)
    engine = _load_engine(args.engine)
    from npc_rt.judges.factory import build_judges

    judges = build_judges(args.judge, **judge_options)
    params = generation_params(engine, steps=args.steps, size=args.size)
    if args.baseline:
        sampler: Any = BaselineSampler(engine, judges.verifier, params=params)
    else:
        sampler = CorrectionSampler(engine, judges, k=args.k, mode=args.mode, params=params)
    if args.eval_judge is not None:
        evaluator = build_judges(args.eval_judge, **judge_options).verifier
        sampler = RejudgedSampler(sampler, evaluator)
    arguments = {
        "metadata_file": args.metadata.name,
        "metadata_sha256": _sha256(args.metadata),
        "limit": args.limit,
        "per_tag": args.per_tag,
        "engine_manifest_hash": engine.manifest_hash,
        "judge": args.judge,
        "eval_judge": args.eval_judge,
        "judge_options": {
            k: v for k, v in sorted(judge_options.items()) if k not in _SECRET_OPTIONS
        },
        "params": dataclasses.asdict(params),
        "k": None if args.baseline else args.k,
        "mode": None if args.baseline else args.mode,
    }
    summary = run_eval(
        args.out, plan, sampler, arguments, progress=None if args.quiet else print_progress
    )
    if not args.no_report:
        files = write_report(args.out, summary, load_records(args.out, plan))
        if not args.quiet:
            print(f"report: {files.markdown}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(_summary_line(summary))
    return 0


def load_eval_prompts(
    path: Path, *, limit: int | None = None, per_tag: int | None = None
) -> tuple[Any, ...]:
    """Prompt specs (``npc_rt.metadata``) as eval prompts; plain-text prompts get the tag
    "untagged" and no metadata, so the verifier judges them from the prompt alone. ``index`` is
    the line's position among the file's prompts, so a subset keeps the file's numbering.
    ``per_tag`` keeps the first N of each tag, then ``limit`` the first N of those."""
    from npc_rt.evaluation import EvalPrompt
    from npc_rt.metadata import load_prompt_specs

    for name, value in (("--limit", limit), ("--per-tag", per_tag)):
        if value is not None and value < 1:
            raise InvalidInputError(f"{name} must be at least 1, got {value}")
    prompts = [
        EvalPrompt(
            index=index,
            prompt=spec.prompt,
            tag=spec.tag or "untagged",
            metadata=spec.to_mapping() if spec.has_expectations else None,
        )
        for index, spec in enumerate(load_prompt_specs(path))
    ]
    if per_tag is not None:
        seen: dict[str, int] = {}
        kept = []
        for item in prompts:
            seen[item.tag] = seen.get(item.tag, 0) + 1
            if seen[item.tag] <= per_tag:
                kept.append(item)
        prompts = kept
    if limit is not None:
        prompts = prompts[:limit]
    return tuple(prompts)


def generation_params(engine: Any, *, steps: int | None, size: str | None) -> Any:
    """The engine's default parameters with ``--steps``/``--size`` applied (the engine checks the
    values when it generates; a bad ``--size`` spelling is refused here)."""
    params = engine.default_params
    if steps is not None:
        if steps < 1:
            raise InvalidInputError(f"--steps must be at least 1, got {steps}")
        negative_steps = params.negative_steps
        if negative_steps is not None:
            negative_steps = min(negative_steps, steps)  # the family default caps at the steps
        params = dataclasses.replace(params, steps=steps, negative_steps=negative_steps)
    if size is not None:
        parts = size.lower().split("x")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise InvalidInputError(f"--size expects HxW such as 512x512, got {size!r}")
        params = dataclasses.replace(params, height=int(parts[0]), width=int(parts[1]))
    return params


def _load_engine(path: Path) -> Any:
    import npc_rt

    load = getattr(npc_rt, "load_engine", None)
    if load is None:
        from npc_rt.pipeline import load_engine as load
    return load(path)


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise NpcIOError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _summary_line(summary: dict[str, Any]) -> str:
    overall = summary["overall"]
    line = (
        f"{summary['samples']} samples; accuracy without NPC "
        f"{overall['original']['mean_of_tags']:.3f} (mean of tags), "
        f"{overall['original']['all_samples']:.3f} (all samples)"
    )
    if not summary["baseline"]:
        line += (
            f"; with NPC {overall['npc']['mean_of_tags']:.3f} / "
            f"{overall['npc']['all_samples']:.3f}; gain {overall['gain']['mean_of_tags']:+.3f}"
        )
    return line
