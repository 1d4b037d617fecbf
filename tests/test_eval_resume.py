"""Kill the eval harness with SIGKILL in the middle of a run, restart it, and check that nothing
finished is redone, nothing written is lost, and the summary equals an uninterrupted run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fixtures.eval_fakes import run_fake_eval

TESTS = Path(__file__).resolve().parent
DELAY = 0.15  # seconds per sample: long enough to land the kill mid-run, short for CI


def _start(eval_dir: Path, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "fixtures.eval_fakes", str(eval_dir), str(log), str(DELAY)],
        cwd=TESTS,
        env=env,
    )


def _records(eval_dir: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (eval_dir / "records").glob("*.json")}


def test_sigkill_mid_run_then_restart_redoes_nothing(tmp_path: Path) -> None:
    eval_dir, log = tmp_path / "eval", tmp_path / "calls.log"
    proc = _start(eval_dir, log)
    deadline = time.monotonic() + 60
    while len(_records(eval_dir)) < 3:  # wait for the first records to appear
        assert proc.poll() is None, "the eval finished or died before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = _records(eval_dir)
    assert 3 <= len(finished) < 10
    assert not (eval_dir / "summary.json").exists()
    contents = {n: (eval_dir / "records" / n).read_bytes() for n in finished}

    restarted = _start(eval_dir, log)
    assert restarted.wait(timeout=60) == 0
    # Nothing finished was redone: the records are untouched and each sample was computed once,
    # except at most the one the kill interrupted (computed, not yet recorded).
    for name, mtime in finished.items():
        assert (eval_dir / "records" / name).stat().st_mtime_ns == mtime
        assert (eval_dir / "records" / name).read_bytes() == contents[name]
    calls = log.read_text().splitlines()
    assert len(set(calls)) == 10
    assert len(calls) - len(set(calls)) <= 1
    recomputed = {c for c in calls if calls.count(c) > 1}
    finished_ids = {f"{int(n[:5])} {int(n.split('_s')[1][:-5])}" for n in finished}
    assert not (recomputed & finished_ids)
    assert not list(eval_dir.rglob(".*.tmp"))

    summary = json.loads((eval_dir / "summary.json").read_text())
    fresh = run_fake_eval(tmp_path / "fresh")
    summary.pop("latency_s")
    fresh.pop("latency_s")
    assert summary == fresh
