"""``npc-rt bench``: the benchmarks of a source checkout (``python -m benches``).

The benches are not installed with the package (they need the test fixtures and peers such as
diffusers); this command finds the checkout npc_rt is imported from, or the current directory,
and hands over to ``benches/__main__.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from npc_rt.errors import NpcError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="run the benchmarks of a source checkout (python -m benches)",
        description=(
            "Delegates to `python -m benches` in the source checkout: `npc-rt bench list`, "
            "`npc-rt bench profile --engine DIR ...`, `npc-rt bench run NAME ...`."
        ),
        add_help=False,
        # every argument, options included, belongs to `python -m benches`: no prefix is ours
        prefix_chars="\x00",
    )
    parser.add_argument("bench_args", nargs=argparse.REMAINDER)
    parser.set_defaults(func=run)


def find_checkout() -> Path | None:
    """The repository root holding ``benches/__main__.py``: npc_rt's own checkout first (an
    editable install imports from ``<root>/python/npc_rt``), then the working directory."""
    import npc_rt

    candidates = [Path(npc_rt.__file__).resolve().parents[2], Path.cwd(), *Path.cwd().parents]
    for root in candidates:
        if (root / "benches" / "__main__.py").is_file():
            return root
    return None


def run(args: argparse.Namespace) -> int:
    root = find_checkout()
    if root is None:
        raise NpcError(
            "the benchmarks live in the npc_rt source checkout (benches/), which is not installed "
            "with the package: clone the repository and run `npc-rt bench` or `python -m benches` "
            "from it"
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benches.__main__ import main

    return main(list(args.bench_args))
