"""The human-readable report of an eval directory: report.md, a per-tag bar chart, a grid of fixes.

Everything here reads ``summary.json`` and the records the harness wrote, so a report can be
rebuilt at any time (``npc-rt eval --report-only``). The bar chart needs matplotlib (the ``report``
extra); without it the report says so and still writes the markdown and the grid (Pillow only).
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from npc_rt.evaluation.files import read_json, write_bytes_atomic, write_png_atomic
from npc_rt.evaluation.summary import sample_outcome

REPORT_NAME = "report.md"
CHART_NAME = "accuracy_by_tag.png"
GRID_NAME = "fixed_grid.png"


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    chart: Path | None
    grid: Path | None


def write_report(
    eval_dir: Path,
    summary: Mapping[str, Any],
    records: Sequence[Mapping[str, Any]],
    *,
    max_grid_rows: int = 16,
    thumb: int = 256,
) -> ReportFiles:
    eval_dir = Path(eval_dir)
    chart = _write_chart(eval_dir / CHART_NAME, summary)
    fixed = [r for r in records if sample_outcome(r) == "fixed"]
    grid = None
    if fixed and not summary["baseline"]:
        grid = eval_dir / GRID_NAME
        write_png_atomic(grid, fixed_grid(eval_dir, fixed[:max_grid_rows], thumb=thumb))
    markdown = eval_dir / REPORT_NAME
    text = render_markdown(summary, records, chart=chart, grid=grid, grid_rows=max_grid_rows)
    write_bytes_atomic(markdown, text.encode("utf-8"))
    return ReportFiles(markdown=markdown, chart=chart, grid=grid)


def render_markdown(
    summary: Mapping[str, Any],
    records: Sequence[Mapping[str, Any]],
    *,
    chart: Path | None,
    grid: Path | None,
    grid_rows: int = 16,
) -> str:
    baseline = bool(summary["baseline"])
    overall = summary["overall"]
    lines = [
        "# NPC evaluation",
        "",
        f"{summary['prompts']} prompts x {len(summary['seeds'])} seeds = "
        f"{summary['samples']} samples"
        + (" (baseline: original generation only)" if baseline else "")
        + ".",
        "",
    ]
    if baseline:
        lines += ["| tag | samples | accuracy | unknown |", "|---|---:|---:|---:|"]
        for tag, row in summary["tags"].items():
            o = row["original"]
            lines.append(f"| {tag} | {row['samples']} | {o['accuracy']:.3f} | {o['unknown']} |")
        o = overall["original"]
        lines += [
            f"| **overall (mean of tags)** | {summary['samples']} | "
            f"**{o['mean_of_tags']:.3f}** | {o['unknown']} |",
            f"| overall (all samples) | {summary['samples']} | {o['all_samples']:.3f} | |",
        ]
    else:
        lines += [
            "| tag | samples | without NPC | with NPC | gain |",
            "|---|---:|---:|---:|---:|",
        ]
        for tag, row in summary["tags"].items():
            lines.append(
                f"| {tag} | {row['samples']} | {row['original']['accuracy']:.3f} | "
                f"{row['npc']['accuracy']:.3f} | {row['gain']:+.3f} |"
            )
        o, n, g = overall["original"], overall["npc"], overall["gain"]
        lines += [
            f"| **overall (mean of tags)** | {summary['samples']} | **{o['mean_of_tags']:.3f}** | "
            f"**{n['mean_of_tags']:.3f}** | **{g['mean_of_tags']:+.3f}** |",
            f"| overall (all samples) | {summary['samples']} | {o['all_samples']:.3f} | "
            f"{n['all_samples']:.3f} | {g['all_samples']:+.3f} |",
            "",
            f"Fixed by NPC: {summary['fixed']}; broken: {summary['broken']}; unknown verdicts: "
            f"{o['unknown']} before, {n['unknown']} after.",
            f"Attempts: {summary['attempts']['mean_per_sample']:.2f} per sample, "
            f"{summary['attempts']['mean_per_corrected_sample']:.2f} per sample that needed "
            f"correction (max {summary['attempts']['max']}).",
        ]
    latency = summary["latency_s"]
    lines += [
        "",
        f"Latency: original generation and verdict {latency['original_per_sample']:.2f} s per "
        f"sample; whole sample{'' if baseline else ' including NPC'} "
        f"{latency['total_per_sample']:.2f} s per sample, {latency['total_per_prompt']:.2f} s "
        "per prompt.",
        "",
    ]
    if chart is not None:
        lines += [f"![accuracy by tag]({chart.name})", ""]
    else:
        lines += ["(No bar chart: install the `report` extra for matplotlib.)", ""]
    if grid is not None:
        fixed = [r for r in records if sample_outcome(r) == "fixed"]
        lines += [
            f"## Prompts NPC fixed ({len(fixed)}; the grid shows the first "
            f"{min(len(fixed), grid_rows)})",
            "",
            f"![original vs corrected]({grid.name})",
            "",
            "| sample | prompt | negative | attempts |",
            "|---|---|---|---:|",
        ]
        for r in fixed:
            neg = r["npc"].get("negative") or ""
            lines.append(
                f"| {r['sample_id']} | {_cell(r['prompt'])} | {_cell(neg)} | "
                f"{r['npc']['attempts']} |"
            )
        lines.append("")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def fixed_grid(
    eval_dir: Path, records: Sequence[Mapping[str, Any]], *, thumb: int = 256
) -> np.ndarray:
    """Rows of (original, corrected) thumbnails, each row captioned with prompt and negative."""
    from PIL import Image, ImageDraw

    caption_h = 36
    header_h = 18
    pad = 6
    width = 2 * thumb + 3 * pad
    row_h = thumb + caption_h + pad
    canvas = Image.new("RGB", (width, header_h + pad + row_h * len(records)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, 4), "original", fill=(0, 0, 0))
    draw.text((2 * pad + thumb, 4), "with NPC", fill=(0, 0, 0))
    for row, record in enumerate(records):
        top = header_h + pad + row * row_h
        for col, key in enumerate(("original", "npc")):
            path = Path(eval_dir) / record[key]["image"]
            with Image.open(path) as img:
                tile = img.convert("RGB").resize((thumb, thumb))
            canvas.paste(tile, (pad + col * (thumb + pad), top + caption_h))
        prompt = textwrap.shorten(record["prompt"], width=2 * thumb // 6, placeholder="...")
        negative = textwrap.shorten(
            f"NPC negative: {record['npc'].get('negative') or '-'}",
            width=2 * thumb // 6,
            placeholder="...",
        )
        draw.text((pad, top + 2), prompt, fill=(0, 0, 0))
        draw.text((pad, top + 18), negative, fill=(120, 0, 0))
    return np.asarray(canvas)


def _write_chart(path: Path, summary: Mapping[str, Any]) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    tags = list(summary["tags"])
    sides = ["original"] if summary["baseline"] else ["original", "npc"]
    labels = {"original": "without NPC", "npc": "with NPC"}
    x = np.arange(len(tags) + 1)
    bar = 0.8 / len(sides)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(x)), 4.0))
    for i, side in enumerate(sides):
        values = [summary["tags"][t][side]["accuracy"] for t in tags]
        values.append(summary["overall"][side]["mean_of_tags"])
        bars = ax.bar(x + (i - (len(sides) - 1) / 2) * bar, values, bar, label=labels[side])
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(x, [*tags, "overall"], rotation=20, ha="right")
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("accuracy")
    ax.set_title(f"accuracy by tag ({summary['samples']} samples)")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())
    return path


def load_summary(eval_dir: Path) -> dict[str, Any]:
    return read_json(Path(eval_dir) / "summary.json")
