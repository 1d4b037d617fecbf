"""``python -m benches``: list the benches, run one, or profile an engine directory."""

from __future__ import annotations

import runpy
import sys
from collections.abc import Sequence

from benches import BENCH_PREFIX, available_benches

USAGE = """usage: python -m benches [list | profile --engine DIR ... | run NAME [ARGS...]]

  list                  the benches in this folder (the default)
  profile --engine DIR  latency profile of an engine directory (--help for its options)
  run NAME [ARGS...]    run benches/bench_NAME.py as a script with ARGS
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args else "list"
    if command in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if command == "list":
        print("profile: latency profile of an engine directory (python -m benches profile --help)")
        for name, summary in available_benches().items():
            print(f"{name}: {summary}" if summary else name)
        return 0
    if command == "profile":
        from benches.profile_engine import main as profile_main

        return profile_main(args[1:])
    if command == "run":
        if len(args) < 2:
            print("python -m benches run: name a bench (python -m benches list)", file=sys.stderr)
            return 2
        return run_bench(args[1], args[2:])
    print(f"python -m benches: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


def run_bench(name: str, args: Sequence[str]) -> int:
    benches = available_benches()
    module = name if name.startswith(BENCH_PREFIX) else f"{BENCH_PREFIX}{name}"
    short = module[len(BENCH_PREFIX) :]
    if short not in benches:
        known = ", ".join(benches) or "none"
        print(f"python -m benches run: no bench {name!r} (known: {known})", file=sys.stderr)
        return 2
    saved = sys.argv
    sys.argv = [f"benches/{module}.py", *args]
    try:
        runpy.run_module(f"benches.{module}", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    finally:
        sys.argv = saved
    return 0


if __name__ == "__main__":
    sys.exit(main())
