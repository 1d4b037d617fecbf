"""A CI-sized run of the engine profiler (``python -m benches profile``) on the tiny engine.

Small counts (2 resolutions, 2 steps, K 2, 2 repeats) keep it to seconds; the assertions check
that every section is there with positive timings, and that the side-by-side sections measured
both sides. Speed itself is never asserted here (that is what the bench reports are for).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benches.profile_engine import (  # noqa: E402
    SECTIONS,
    ProfileSettings,
    profile,
    render_markdown,
    write_outputs,
)

STAT_KEYS = ("median_s", "q1_s", "q3_s", "iqr_s", "min_s", "max_s", "mean_s", "runs")


def _assert_stats(stats: dict, where: str) -> None:
    for key in STAT_KEYS:
        assert key in stats, f"{where}: no {key}"
    assert stats["median_s"] > 0, where
    assert stats["min_s"] <= stats["median_s"] <= stats["max_s"], where
    assert stats["iqr_s"] >= 0, where


@pytest.fixture(scope="module")
def smoke_profile(
    tiny_flux_engine_dir: Path,
    tiny_flux_pipeline_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("profile")
    settings = ProfileSettings(
        engine_dir=tiny_flux_engine_dir,
        out_dir=out,
        resolutions=((32, 32), (64, 64)),
        steps=2,
        k=2,
        warmup=1,
        repeats=2,
        cold_runs=1,
        providers=("cpu",),
        judge_latency_s=0.001,
        source=tiny_flux_pipeline_dir,
    )
    report = profile(settings, log=lambda _line: None)
    write_outputs(report, out)
    return report, out


def test_profile_has_every_section_with_positive_timings(smoke_profile: tuple[dict, Path]) -> None:
    report, _ = smoke_profile
    for section in (*SECTIONS, "memory", "engine", "environment", "settings"):
        assert section in report, section
        assert "skipped" not in report[section], (section, report[section])
    assert [row["resolution"] for row in report["components"]] == [[32, 32], [64, 64]]
    for row in report["components"]:
        assert set(row["text_encoders"]) == {"text_encoder", "text_encoder_2"}
        for name, stats in row["text_encoders"].items():
            _assert_stats(stats, name)
        assert [row["denoise_step"][b]["batch"] for b in ("batch_1", "batch_2", "batch_2k")] == [
            1,
            2,
            4,
        ]
        for b, stats in row["denoise_step"].items():
            _assert_stats(stats, b)
        _assert_stats(row["vae_decode"], "vae_decode")
    for row in report["end_to_end"]:
        for key in ("generate", "generate_k_negatives", "correct_batched", "correct_sequential"):
            _assert_stats(row[key], key)
        assert row["correct_batched_over_sequential"] > 0
    cold = report["cold_start"]
    for key in ("import_s", "load_s", "first_generate_s", "second_generate_s"):
        _assert_stats(cold[key], key)
    assert cold["peak_rss_mb"] > 10
    rank = report["ranking"]
    _assert_stats(rank["ours"], "ours")
    _assert_stats(rank["reference"], "reference")
    assert rank["reference"]["encoder_calls"] > rank["k"]
    assert sorted(rank["order_ours"]) == sorted(rank["order_reference"])
    diff = report["diffusers"]
    for side in ("ours", "diffusers"):
        _assert_stats(diff["generate"][side], f"diffusers generate {side}")
        _assert_stats(diff["encode_prompt"][side], f"diffusers encode {side}")
    assert diff["ours_over_diffusers"]["generate"] > 0
    scaling = report["scaling"]
    assert [r["k"] for r in scaling["k"]["rows"]][0] == 1
    assert len(scaling["text_length"]["rows"]) >= 2
    assert len(scaling["resolution"]["rows"]) >= 2
    for group in ("k", "text_length"):
        for r in scaling[group]["rows"]:
            _assert_stats(r, group)
    assert report["memory"]["peak_rss_mb"] >= report["memory"]["peak_rss_mb_without_diffusers"] > 10


def test_profile_outputs_json_markdown_and_plot(smoke_profile: tuple[dict, Path]) -> None:
    report, out = smoke_profile
    assert json.loads((out / "profile.json").read_text()) == json.loads(json.dumps(report))
    text = (out / "profile.md").read_text()
    assert text == render_markdown(report) + "\n"
    for heading in (
        "## Components",
        "## End to end",
        "## Cold start",
        "## Ranking",
        "## diffusers",
    ):
        assert heading in text
    assert "| 64x64 |" in text
    png = out / "profile.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_benches_entry_point_lists_and_rejects_unknown_commands() -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "benches", "list"], cwd=REPO, capture_output=True, text=True
    )
    assert listed.returncode == 0 and listed.stdout.startswith("profile:")
    bad = subprocess.run(
        [sys.executable, "-m", "benches", "run", "no_such_bench"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "no bench 'no_such_bench'" in bad.stderr
    via_cli = subprocess.run(
        [sys.executable, "-m", "npc_rt", "bench", "list"], cwd=REPO, capture_output=True, text=True
    )
    assert via_cli.returncode == 0 and via_cli.stdout == listed.stdout


def test_npc_rt_bench_outside_a_checkout_says_where_the_benches_are(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import npc_rt.cli.bench as bench_cli
    from npc_rt.cli import main as cli_main

    monkeypatch.setattr(bench_cli, "find_checkout", lambda: None)
    assert cli_main(["bench", "list"]) == 1
    assert "source checkout" in capsys.readouterr().err


def test_resident_bench_compares_both_loops_on_the_demo_engine() -> None:
    """benches/bench_resident.py as a user runs it: both loops timed, same images."""
    done = subprocess.run(
        [sys.executable, str(REPO / "benches" / "bench_resident.py"), "--steps", "2", "--k", "2",
         "--repeats", "1", "--size", "64"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any("latents on the host" in line for line in lines)
    assert any("latents on the device" in line for line in lines)
    summary = next(line for line in lines if "host / device" in line)
    assert float(summary.rsplit("max image diff", 1)[1]) <= 1e-5
