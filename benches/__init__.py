"""Benchmarks of npc_rt, run from a source checkout: ``python -m benches`` lists them.

``python -m benches profile --engine DIR ...`` profiles one engine directory (see
``benches/profile_engine.py``); ``python -m benches run NAME [ARGS...]`` runs any ``bench_NAME.py``
module of this folder as a script. Each bench prints its ratio against a peer measured in the
same run.
"""

from __future__ import annotations

import pkgutil
from pathlib import Path

BENCH_PREFIX = "bench_"


def available_benches() -> dict[str, str]:
    """``name -> first line of its docstring`` for every ``bench_<name>.py`` here (no import)."""
    found = {}
    folder = Path(__file__).parent
    for info in sorted(pkgutil.iter_modules([str(folder)]), key=lambda i: i.name):
        if info.name.startswith(BENCH_PREFIX):
            found[info.name[len(BENCH_PREFIX) :]] = _summary(folder / f"{info.name}.py")
    return found


def _summary(path: Path) -> str:
    """The first docstring line, read as text so listing imports nothing heavy."""
    import ast

    try:
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    except (OSError, SyntaxError, ValueError):
        return ""
    return doc.strip().splitlines()[0] if doc else ""
