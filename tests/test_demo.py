"""The shipped demo engine and ``npc-rt demo``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from npc_rt.demo import demo_engine_dir
from PIL import Image


def test_reexporting_the_demo_engine_reproduces_the_shipped_one(tmp_path: Path) -> None:
    from npc_rt_export.demo import build_demo_engine, demo_engine_digest

    shipped = demo_engine_digest(demo_engine_dir())
    rebuilt = demo_engine_digest(build_demo_engine(tmp_path / "engine"))
    assert sorted(rebuilt) == sorted(shipped)
    changed = [name for name in shipped if shipped[name] != rebuilt[name]]
    assert changed == [], f"re-export differs from the shipped demo engine in {changed}"


def test_demo_engine_is_small_and_complete() -> None:
    engine = demo_engine_dir()
    size = sum(p.stat().st_size for p in engine.rglob("*") if p.is_file())
    assert size < 10_000_000, f"demo engine grew to {size / 1e6:.1f} MB"
    manifest = json.loads((engine / "manifest.json").read_text())
    for component in manifest["components"].values():
        assert (engine / component["file"]).is_file()


@pytest.mark.slow
def test_demo_runs_the_whole_correction_without_torch(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    script = (
        "import json, sys\n"
        "from npc_rt.cli import main\n"
        f"code = main(['demo', '--out', {str(run_dir)!r}, '--quiet', '--json'])\n"
        "assert 'torch' not in sys.modules, 'the demo imported torch'\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    record = json.loads((run_dir / "run.json").read_text())
    assert record["prompt"] == "a photo of two cats"
    # The random-weight engine draws no cats, so the local judge rejects the original and the
    # loop must have proposed, ranked and regenerated K candidates.
    assert summary["status"] in {"accepted", "not_accepted"}
    assert summary["attempts"] == 5
    assert len(summary["candidates"]) == 5
    assert sorted(a["negative"] for a in record["attempts"]) == sorted(summary["candidates"])
    images = [("original.png", None)] + [(a["image"], a["negative"]) for a in record["attempts"]]
    for name, negative in images:
        with Image.open(run_dir / name) as image:
            assert image.size == (128, 128)
            assert image.text["prompt"] == "a photo of two cats"
            assert image.text["seed"] == "0"
            assert image.text["negative"] == (negative or "")
    with Image.open(run_dir / "contact_sheet.png") as sheet:
        assert sheet.width > 128 * 2
