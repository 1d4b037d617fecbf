"""A seconds-long run of benches/bench_loop.py (fake generator, fast judges): the bench runs every
peer to the end and prints its ratios. Speed itself is never asserted here."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benches import bench_loop  # noqa: E402


def test_bench_loop_smoke(capsys):
    ratios = bench_loop.main(
        [
            "--generator",
            "fake",
            "--gen-call-s",
            "0",
            "--gen-image-s",
            "0",
            "--judge-latency",
            "0.01",
            "--repeats",
            "1",
        ]
    )
    out = capsys.readouterr().out
    assert set(ratios) == {"batched", "batched-nospec"} and all(r > 0 for r in ratios.values())
    assert "FAKE generator" in out and "ratio batched / sequential" in out
    for peer in ("sequential", "batched", "batched-nospec"):
        assert any(line.startswith(peer + " ") for line in out.splitlines())
