"""The one-command demo: a full NPC correction on the engine shipped inside the package, judged by
the embedded local (detector-based) judge. No network, no GPU, no torch.

The demo engine is a tiny FLUX model with random weights (built and exported by
``npc_rt_export.demo``): its images are noise-like, so the demo shows the machinery (generate,
verify, caption, propose, rank, regenerate, record), not image quality. Point ``npc-rt correct
--engine`` at a real exported model and ``--judge openai`` at a real VLM for real use.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from importlib.resources import files
from pathlib import Path

from npc_rt.errors import EngineError

DEMO_PROMPT = "a photo of two cats"
DEMO_SEED = 0
DEMO_PARAMS = {"steps": 8, "height": 128, "width": 128}
"""Small enough to finish in seconds on two CPU cores; the demo engine is exported for 64..256."""


def demo_engine_dir() -> Path:
    path = Path(str(files("npc_rt") / "demo_engine"))
    if not (path / "manifest.json").is_file():
        raise EngineError(
            f"the demo engine is missing from this installation ({path}); reinstall npc-rt or "
            "rebuild it with `python -m npc_rt_export.demo python/npc_rt/demo_engine`"
        )
    return path


def default_run_dir() -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"demo-{stamp}"


def run_demo(
    out_dir: str | Path | None = None,
    *,
    prompt: str = DEMO_PROMPT,
    seed: int = DEMO_SEED,
    k: int = 5,
    mode: str = "batched",
    progress: Callable[[str], None] | None = None,
):
    """Run one correction on the demo engine with the local judge; returns the
    ``CorrectionResult`` (its ``run_dir`` holds run.json, the PNGs and the contact sheet)."""
    from npc_rt.judges.factory import build_judges
    from npc_rt.loop import correct
    from npc_rt.pipeline import load_engine

    engine = load_engine(demo_engine_dir())
    judges = build_judges("local")
    return correct(
        prompt,
        seed,
        engine,
        judges,
        k=k,
        mode=mode,
        out_dir=Path(out_dir) if out_dir is not None else default_run_dir(),
        params=DEMO_PARAMS,
        progress=progress,
    )
