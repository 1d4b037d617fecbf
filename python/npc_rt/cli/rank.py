"""``npc-rt rank``: rank candidate negatives for a prompt by the salient text-space score, with the
engine's own scoring text encoder (text only: no image is generated)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rank",
        help="rank candidate negative prompts by the salient score (text encoder only)",
        description=(
            "Clean the candidates (the proposer rules), encode prompt and candidates with the "
            "engine's scoring encoder in one call, and print each candidate's rank, score and "
            "components (score = s_qty + s_obj - s_cand), best first."
        ),
    )
    parser.add_argument("--engine", type=Path, required=True, help="exported engine directory")
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--candidates", nargs="+", required=True, metavar="TEXT")
    parser.add_argument("--k", type=int, default=None, help="keep the first K after cleaning")
    parser.add_argument("--provider", action="append", default=None, help="ONNX Runtime provider")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from npc_rt.scoring import rank_candidates

    engine = _load_engine(args.engine, args.provider)
    ranking = rank_candidates(args.prompt, args.candidates, engine.scoring_encoder(), k=args.k)
    if args.json:
        print(json.dumps(ranking_json(ranking), indent=2))
        return 0
    print(f"prompt: {ranking.prompt}")
    print(f"quantities: {', '.join(ranking.terms.quantities)}")
    print(f"objects: {', '.join(ranking.terms.objects)}")
    print(f"{'rank':>4}  {'score':>8}  {'s_qty':>8}  {'s_obj':>8}  {'s_cand':>8}  candidate")
    for row in ranking.candidates:
        print(
            f"{row.rank:>4}  {row.score:>8.4f}  {row.s_qty:>8.4f}  {row.s_obj:>8.4f}  "
            f"{row.s_cand:>8.4f}  {row.text}"
        )
    return 0


def ranking_json(ranking: Any) -> dict[str, Any]:
    return {
        "prompt": ranking.prompt,
        "quantities": list(ranking.terms.quantities),
        "objects": list(ranking.terms.objects),
        "fallback_terms": ranking.terms.fallback,
        "candidates": [
            {
                "rank": row.rank,
                "text": row.text,
                "score": row.score,
                "s_qty": row.s_qty,
                "s_obj": row.s_obj,
                "s_cand": row.s_cand,
            }
            for row in ranking.candidates
        ],
    }


def _load_engine(path: Path, providers: list[str] | None) -> Any:
    from npc_rt.pipeline import load_engine

    return load_engine(path, providers=providers)
