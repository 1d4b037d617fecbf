"""The judge flags shared by every subcommand that builds judges (correct, eval), and their
translation into ``npc_rt.judges.build_judges`` options."""

from __future__ import annotations

import argparse
import json
from typing import Any

from npc_rt.errors import InvalidInputError

_JUDGE_FLAGS = (
    "base_url",
    "api_key_env",
    "model",
    "verifier_model",
    "captioner_model",
    "proposer_model",
    "timeout",
    "retries",
    "concurrency",
)


def add_judge_options(group: argparse._ArgumentGroup) -> None:
    """Every judge option except the kind (``--judge``), whose default differs per command."""
    group.add_argument("--base-url", help="OpenAI-compatible API base URL (all roles)")
    group.add_argument(
        "--api-key-env",
        help="name of the environment variable holding the API key ('' for none); "
        "default OPENAI_API_KEY",
    )
    group.add_argument("--model", help="model for every role without its own")
    group.add_argument("--verifier-model")
    group.add_argument("--captioner-model")
    group.add_argument("--proposer-model")
    group.add_argument("--timeout", type=float, help="seconds per judge request")
    group.add_argument("--retries", type=int, help="retries per judge request")
    group.add_argument("--concurrency", type=int, help="requests in flight per role")
    group.add_argument(
        "--judge-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other option of the judge kind (VALUE read as JSON when it is JSON); repeatable",
    )


def judge_options(args: argparse.Namespace) -> dict[str, Any]:
    """The judge flags as ``build_judges`` options (unset flags left out)."""
    options: dict[str, Any] = {}
    for name in _JUDGE_FLAGS:
        value = getattr(args, name, None)
        if value is not None:
            options[name] = value
    for item in args.judge_option:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise InvalidInputError(f"--judge-option expects KEY=VALUE, got {item!r}")
        try:
            options[key] = json.loads(raw)
        except json.JSONDecodeError:
            options[key] = raw
    return options
