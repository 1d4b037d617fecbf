"""Latency profile of one engine directory: ``python -m benches profile --engine DIR``.

Sections of the JSON (``profile.json``; also ``profile.md`` and ``profile.png``):

- ``cold_start``: a fresh interpreter importing npc_rt, loading the engine, and generating twice
  (the first generation pays session warm-up); its peak RSS.
- ``components``: per resolution, each text encoder at batch 1, one denoising step (the
  transformer) at batch 1, 2 and 2K, and the VAE decode at batch 1, run through the engine's own
  backend with synthetic inputs of the exact shapes sampling uses.
- ``end_to_end``: per resolution, ``generate`` with no negative and with K negatives (one batched
  call), and ``correct`` in both regeneration modes with a judge of fixed latency that rejects
  every image (the worst case: all K candidates are tried).
- ``ranking``: the reference's ranking path (per-candidate encoder calls, every text padded to the
  encoder length) against ours (``npc_rt.scoring.rank_candidates``: one batched call, Rust scoring).
- ``diffusers``: diffusers' ``FluxPipeline`` on the source weights, same prompt, size and steps,
  in the same run (needs diffusers and ``--source`` or a source path in the manifest).
- ``scaling``: latency against K candidates, T5 text length and resolution.
- ``memory``: peak host RSS and, on NVIDIA GPUs, device memory seen after each section.

Every timed number is the median of ``--repeats`` runs after ``--warmup`` untimed ones, with its
interquartile range.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from benches._reference_rank import reference_rank
from benches._timing import (
    Stats,
    current_rss_mb,
    device_memory_mb,
    measure,
    peak_rss_mb,
    stats_of,
)

SCHEMA = "npc_rt.bench.profile/1"
PROMPT = "a photo of three red apples to the left of two blue cups"
CANDIDATES = (
    "green apples",
    "four apples",
    "a bowl of oranges",
    "cartoon",
    "blurry",
    "red cups",
    "text",
    "watermark",
    "a plate",
    "low quality",
    "a wooden table",
    "three cups",
    "overexposed",
    "harsh lighting",
    "illustration",
    "3d render",
)
SECTIONS = ("cold_start", "components", "end_to_end", "ranking", "scaling", "diffusers")
# diffusers runs last: importing torch inflates the process's memory for everything after it.


@dataclass(frozen=True)
class ProfileSettings:
    engine_dir: Path
    out_dir: Path
    resolutions: tuple[tuple[int, int], ...] | None = None
    steps: int | None = None
    k: int = 5
    warmup: int = 1
    repeats: int = 5
    cold_runs: int = 2
    providers: tuple[str, ...] | None = None
    intra_op_threads: int | None = None
    judge_latency_s: float = 0.05
    source: Path | None = None
    skip: frozenset[str] = frozenset()


# -- entry point ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benches profile",
        description="Latency profile of an engine directory (JSON, markdown table, PNG plot).",
    )
    parser.add_argument("--engine", type=Path, required=True, help="exported engine directory")
    parser.add_argument("--out", type=Path, default=Path("bench-results/profile"))
    parser.add_argument(
        "--resolutions",
        nargs="+",
        metavar="HxW",
        help="sizes to profile (default: the engine's min, opt and max resolution)",
    )
    parser.add_argument("--steps", type=int, help="denoising steps end to end (default: engine's)")
    parser.add_argument("--k", type=int, default=5, help="candidates (the 2K batch, correct)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cold-runs", type=int, default=2, help="fresh-process engine loads")
    parser.add_argument("--providers", nargs="+", help="ONNX Runtime providers (cpu, cuda, ...)")
    parser.add_argument(
        "--intra-op-threads",
        type=int,
        help="ONNX Runtime intra-op threads per session (default: ONNX Runtime's choice)",
    )
    parser.add_argument("--judge-latency", type=float, default=0.05, help="fake judge seconds")
    parser.add_argument("--source", type=Path, help="diffusers pipeline folder of the same weights")
    parser.add_argument("--skip", nargs="+", choices=SECTIONS, default=[], help="sections to skip")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = ProfileSettings(
        engine_dir=args.engine,
        out_dir=args.out,
        resolutions=tuple(parse_resolution(r) for r in args.resolutions)
        if args.resolutions
        else None,
        steps=args.steps,
        k=args.k,
        warmup=args.warmup,
        repeats=args.repeats,
        cold_runs=args.cold_runs,
        providers=tuple(args.providers) if args.providers else None,
        intra_op_threads=args.intra_op_threads,
        judge_latency_s=args.judge_latency,
        source=args.source,
        skip=frozenset(args.skip),
    )
    report = profile(settings, log=lambda line: print(line, file=sys.stderr, flush=True))
    paths = write_outputs(report, settings.out_dir)
    print(render_markdown(report))
    print(f"\nwrote {', '.join(str(p) for p in paths)}", file=sys.stderr)
    return 0


def parse_resolution(text: str) -> tuple[int, int]:
    parts = text.lower().replace("*", "x").split("x")
    try:
        if len(parts) == 1:
            return int(parts[0]), int(parts[0])
        if len(parts) == 2:
            return int(parts[0]), int(parts[1])
    except ValueError:
        pass
    raise SystemExit(f"--resolutions: expected HxW (e.g. 512x512), got {text!r}")


# -- the profile ----------------------------------------------------------------------------------


def profile(settings: ProfileSettings, log: Any = print) -> dict[str, Any]:
    _check_settings(settings)
    memory = _MemoryWatch()
    log(f"loading {settings.engine_dir}")
    start = time.perf_counter()
    pipe = open_pipeline(settings.engine_dir, settings.providers, settings.intra_op_threads)
    load_s = time.perf_counter() - start
    resolutions = settings.resolutions or default_resolutions(pipe)
    for height, width in resolutions:
        pipe.config.check_size(height, width)  # a clear ShapeError before anything runs
    steps = settings.steps or pipe.default_params.steps
    k = min(settings.k, pipe.max_candidates_per_batch)
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "created_unix": time.time(),
        "engine": _engine_info(pipe, settings.engine_dir),
        "environment": _environment(pipe),
        "settings": {
            "resolutions": [list(r) for r in resolutions],
            "steps": steps,
            "k": k,
            "warmup": settings.warmup,
            "repeats": settings.repeats,
            "cold_runs": settings.cold_runs,
            "judge_latency_s": settings.judge_latency_s,
            "intra_op_threads": settings.intra_op_threads,
            "prompt": PROMPT,
        },
        "load_in_process_s": load_s,
    }
    memory.sample("load")
    sections = {
        "cold_start": lambda: cold_start(settings, resolutions[0], steps),
        "components": lambda: [
            component_latency(pipe, r, k, settings.warmup, settings.repeats) for r in resolutions
        ],
        "end_to_end": lambda: [end_to_end(pipe, r, steps, k, settings, log) for r in resolutions],
        "ranking": lambda: ranking(pipe, k, settings.warmup, settings.repeats),
        "scaling": lambda: scaling(pipe, resolutions, steps, settings),
        "diffusers": lambda: diffusers_side_by_side(pipe, settings, resolutions[0], steps, log),
    }
    for name, run in sections.items():
        if name in settings.skip:
            report[name] = {"skipped": "--skip"}
            continue
        log(f"profiling {name}")
        started = time.perf_counter()
        report[name] = run()
        memory.sample(name)
        log(f"  {name}: {time.perf_counter() - started:.1f} s")
    report["memory"] = memory.to_json()
    return report


def open_pipeline(
    engine_dir: Path | str, providers: Sequence[str] | None, intra_op_threads: int | None
) -> Any:
    """``npc_rt.load_engine``, or the same pipeline over a backend with a set thread count."""
    from npc_rt.pipeline import load_engine

    if intra_op_threads is None:
        return load_engine(engine_dir, providers=providers)
    from npc_rt.backends.ort import OrtBackend
    from npc_rt.engine import open_engine
    from npc_rt.pipeline import Pipeline

    engine = open_engine(engine_dir)
    backend = OrtBackend(engine, providers, intra_op_threads=intra_op_threads)
    pipeline = Pipeline(engine, backend)
    backend.load()
    pipeline.clip_tokenizer, pipeline.t5_tokenizer  # noqa: B018 - loaded up front, as load_engine
    return pipeline


def _check_settings(settings: ProfileSettings) -> None:
    from npc_rt.errors import InvalidInputError

    for name in ("k", "repeats", "cold_runs"):
        if getattr(settings, name) < 1:
            raise InvalidInputError(f"--{name.replace('_', '-')} must be at least 1")
    if settings.intra_op_threads is not None and settings.intra_op_threads < 1:
        raise InvalidInputError("--intra-op-threads must be at least 1")
    if settings.warmup < 0:
        raise InvalidInputError("--warmup must be non-negative")
    if settings.steps is not None and settings.steps < 1:
        raise InvalidInputError("--steps must be at least 1")
    if settings.judge_latency_s < 0:
        raise InvalidInputError("--judge-latency must be non-negative")


def default_resolutions(pipe: Any) -> tuple[tuple[int, int], ...]:
    res = pipe.engine.pipeline.get("resolution", {})
    sizes = [tuple(int(v) for v in res[key]) for key in ("min", "opt", "max") if key in res]
    unique = sorted(set(sizes), key=lambda s: s[0] * s[1])
    return tuple(unique) or ((pipe.default_params.height, pipe.default_params.width),)


def _params(pipe: Any, resolution: tuple[int, int], steps: int) -> Any:
    base = pipe.default_params
    negative_steps = None if base.negative_steps is None else min(base.negative_steps, steps)
    return replace(
        base, height=resolution[0], width=resolution[1], steps=steps, negative_steps=negative_steps
    )


class _Texts:
    """Fresh prompt and negative texts, so the pipeline's text cache never hides encoding."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.count = 0

    def prompt(self) -> str:
        self.count += 1
        return f"{PROMPT} {self.tag} {self.count}"

    def negatives(self, k: int) -> list[str]:
        self.count += 1
        return [f"{CANDIDATES[i % len(CANDIDATES)]} {self.tag} {self.count}" for i in range(k)]


# -- sections -------------------------------------------------------------------------------------

_COLD_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys, time
    t0 = time.perf_counter()
    import npc_rt
    from npc_rt.pipeline import load_engine, Pipeline
    from npc_rt.backends.ort import OrtBackend
    from npc_rt.engine import open_engine
    from dataclasses import replace
    t1 = time.perf_counter()
    providers, threads = json.loads(sys.argv[2]), json.loads(sys.argv[6])
    if threads is None:
        pipe = load_engine(sys.argv[1], providers=providers)
    else:  # as open_pipeline() in benches/profile_engine.py
        engine = open_engine(sys.argv[1])
        backend = OrtBackend(engine, providers, intra_op_threads=threads)
        pipe = Pipeline(engine, backend)
        backend.load()
        pipe.clip_tokenizer, pipe.t5_tokenizer
    t2 = time.perf_counter()
    h, w, steps = (int(v) for v in sys.argv[3:6])
    base = pipe.default_params
    n = None if base.negative_steps is None else min(base.negative_steps, steps)
    params = replace(base, height=h, width=w, steps=steps, negative_steps=n)
    pipe.generate("a photo of a cat", seed=0, params=params)
    t3 = time.perf_counter()
    pipe.generate("a photo of a dog", seed=0, params=params)
    t4 = time.perf_counter()
    print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_generate_s": t3 - t2,
                      "second_generate_s": t4 - t3,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    """
)


def cold_start(
    settings: ProfileSettings, resolution: tuple[int, int], steps: int
) -> dict[str, Any]:
    """Fresh interpreters: import, engine load (sessions created), first and second generate."""
    runs = []
    for _ in range(settings.cold_runs):
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                _COLD_SCRIPT,
                str(Path(settings.engine_dir).resolve()),
                json.dumps(list(settings.providers) if settings.providers else None),
                str(resolution[0]),
                str(resolution[1]),
                str(steps),
                json.dumps(settings.intra_op_threads),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"cold-start subprocess failed:\n{out.stderr[-2000:]}")
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    keys = ("import_s", "load_s", "first_generate_s", "second_generate_s")
    result: dict[str, Any] = {key: stats_of([r[key] for r in runs]).to_json() for key in keys}
    result["first_call_overhead_s"] = float(
        np.median([r["first_generate_s"] - r["second_generate_s"] for r in runs])
    )
    result["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    result["resolution"] = list(resolution)
    result["steps"] = steps
    return result


def synthetic_inputs(spec: Any, sizes: dict[str, int], rng: np.random.Generator) -> dict[str, Any]:
    """Inputs of ``spec``'s exact shapes; values only need to be valid (ids in range, mask 1)."""
    inputs = {}
    for tensor in spec.inputs:
        shape = tuple(
            dim if isinstance(dim, int) else sizes.get(dim, spec.dims[dim].opt)
            for dim in tensor.shape
        )
        if tensor.name == "attention_mask":
            inputs[tensor.name] = np.ones(shape, dtype=np.int64)
        elif tensor.dtype.startswith("int"):
            inputs[tensor.name] = rng.integers(3, 100, size=shape, dtype=np.int64)
        elif tensor.name == "timestep":
            inputs[tensor.name] = np.full(shape, 0.5, dtype=np.float32)
        elif tensor.name == "guidance":
            inputs[tensor.name] = np.full(shape, 3.5, dtype=np.float32)
        else:
            inputs[tensor.name] = rng.standard_normal(shape).astype(np.float32)
    return inputs


def _component_sizes(pipe: Any, resolution: tuple[int, int], batch: int) -> dict[str, int]:
    vsf = int(pipe.engine.pipeline.get("vae_scale_factor", 8))
    height, width = resolution
    return {
        "batch": batch,
        "text_length": int(pipe.config.max_sequence_length),
        "image_seq": (height // (2 * vsf)) * (width // (2 * vsf)),
        "latent_height": height // vsf,
        "latent_width": width // vsf,
    }


def time_component(pipe: Any, name: str, sizes: dict[str, int], warmup: int, repeats: int) -> Stats:
    spec = pipe.engine.component(name)
    inputs = synthetic_inputs(spec, sizes, np.random.default_rng(0))
    backend = pipe.backend
    return measure(lambda: backend.run(name, inputs), warmup=warmup, repeats=repeats)


def component_latency(
    pipe: Any, resolution: tuple[int, int], k: int, warmup: int, repeats: int
) -> dict[str, Any]:
    def at(batch: int) -> dict[str, int]:
        return _component_sizes(pipe, resolution, batch)

    components = pipe.engine.components
    out: dict[str, Any] = {"resolution": list(resolution), "text_encoders": {}}
    for name, spec in components.items():
        if spec.kind in ("clip_text_pooled", "t5_encoder") or "text_encoder" in name:
            out["text_encoders"][name] = time_component(
                pipe, name, at(1), warmup, repeats
            ).to_json()
    transformer = "transformer"
    out["denoise_step"] = {
        f"batch_{label}": {
            "batch": batch,
            **time_component(pipe, transformer, at(batch), warmup, repeats).to_json(),
        }
        for label, batch in (("1", 1), ("2", 2), ("2k", 2 * k))
    }
    out["vae_decode"] = time_component(pipe, "vae_decoder", at(1), warmup, repeats).to_json()
    return out


def _fixed_latency_judges(latency: float, k: int) -> Any:
    from npc_rt.judges.base import Caption, Judges, Proposal, Verdict

    class Verifier:
        def verify(self, image: Any, prompt: str, *, metadata: Any = None) -> Verdict:
            time.sleep(latency)
            return Verdict(
                correct=0, score=0.1, reason="fixed-latency judge: rejects all", judge="bench"
            )

    class Captioner:
        def caption(self, image: Any, prompt: str) -> Caption:
            time.sleep(latency)
            return Caption(text="a still life with apples and cups on a table", judge="bench")

    class Proposer:
        def propose(self, prompt: str, caption: Any, verdict: Any, k_: int) -> Proposal:
            time.sleep(latency)
            return Proposal(candidates=tuple(CANDIDATES[:k_]), judge="bench")

    return Judges(verifier=Verifier(), captioner=Captioner(), proposer=Proposer())


def end_to_end(
    pipe: Any,
    resolution: tuple[int, int],
    steps: int,
    k: int,
    settings: ProfileSettings,
    log: Any,
) -> dict[str, Any]:
    from npc_rt.loop import correct

    params = _params(pipe, resolution, steps)
    texts = _Texts(f"e2e{resolution[0]}x{resolution[1]}")
    warmup, repeats = settings.warmup, settings.repeats

    def generate_one() -> None:
        pipe.generate(texts.prompt(), seed=0, params=params)

    def generate_k() -> None:
        pipe.generate(texts.prompt(), seed=0, negatives=texts.negatives(k), params=params)

    out: dict[str, Any] = {"resolution": list(resolution), "steps": steps, "k": k}
    out["generate"] = measure(generate_one, warmup=warmup, repeats=repeats).to_json()
    out["generate_k_negatives"] = measure(generate_k, warmup=warmup, repeats=repeats).to_json()
    judges = _fixed_latency_judges(settings.judge_latency_s, k)
    correct_repeats = max(1, min(repeats, 3))  # each correct() is K + 1 generations
    for mode in ("batched", "sequential"):
        log(f"  correct ({mode}) at {resolution[0]}x{resolution[1]}")

        def run_correct(mode: str = mode) -> None:
            correct(texts.prompt(), 0, pipe, judges, k=k, mode=mode, params=params)

        out[f"correct_{mode}"] = measure(run_correct, warmup=0, repeats=correct_repeats).to_json()
    out["correct_batched_over_sequential"] = (
        out["correct_batched"]["median_s"] / out["correct_sequential"]["median_s"]
    )
    out["judge_latency_s"] = settings.judge_latency_s
    return out


def ranking(pipe: Any, k: int, warmup: int, repeats: int) -> dict[str, Any]:
    from npc_rt.prompt import analyze_prompt
    from npc_rt.scoring import rank_candidates

    encoder = pipe.scoring_encoder()
    spec = pipe.engine.tokenizer(pipe.engine.scoring_encoder.get("tokenizer", "tokenizer_2"))
    length = int(spec.max_length)
    terms = analyze_prompt(PROMPT)
    candidates = list(CANDIDATES[:k])

    def ours() -> Any:
        return rank_candidates(PROMPT, candidates, encoder)

    def reference() -> Any:
        return reference_rank(
            PROMPT,
            candidates,
            encoder,
            quantities=terms.quantities,
            objects=terms.objects,
            length=length,
            pad_id=int(spec.pad_id or 0),
        )

    ours_stats = measure(ours, warmup=warmup, repeats=repeats)
    reference_stats = measure(reference, warmup=warmup, repeats=repeats)
    ours_order = [_candidate_text(c) for c in getattr(ours(), "candidates", ours())]
    reference_order = [c for c, _ in reference()]
    texts_ref = len(candidates) * (3 + len(terms.quantities) + len(terms.objects))
    return {
        "k": len(candidates),
        "padded_length": length,
        "reference": {**reference_stats.to_json(), "encoder_calls": texts_ref},
        "ours": ours_stats.to_json(),
        "reference_over_ours": reference_stats.median_s / ours_stats.median_s,
        "same_order": ours_order == reference_order,
        "order_ours": ours_order,
        "order_reference": reference_order,
    }


def _candidate_text(item: Any) -> str:
    for name in ("text", "candidate", "negative"):
        value = getattr(item, name, None)
        if isinstance(value, str):
            return value
    return str(item)


def diffusers_side_by_side(
    pipe: Any, settings: ProfileSettings, resolution: tuple[int, int], steps: int, log: Any
) -> dict[str, Any]:
    source = settings.source or _manifest_source_path(pipe)
    if source is None:
        return {"skipped": "no --source diffusers folder given and the manifest records none"}
    try:
        import torch
        from diffusers import FluxPipeline
    except ImportError as exc:
        return {"skipped": f"diffusers/torch not installed ({exc.name})"}
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(
        pipe.engine.precision, torch.float32
    )
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()
    try:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    except ImportError:  # diffusers without transformers cannot load FLUX anyway
        pass
    log(f"  loading diffusers FluxPipeline from {source} on {device}")
    start = time.perf_counter()
    reference = FluxPipeline.from_pretrained(str(source), dtype=dtype).to(device)
    load_s = time.perf_counter() - start
    reference.set_progress_bar_config(disable=True)
    height, width = resolution
    max_len = int(pipe.config.max_sequence_length)
    params = _params(pipe, resolution, steps)
    texts = _Texts("diffusers")

    def run_diffusers() -> None:
        with torch.inference_mode():
            reference(
                texts.prompt(),
                height=height,
                width=width,
                num_inference_steps=steps,
                guidance_scale=params.guidance,
                max_sequence_length=max_len,
                generator=torch.Generator("cpu").manual_seed(0),
                output_type="np",
            )

    def run_ours() -> None:
        pipe.generate(texts.prompt(), seed=0, params=params)

    def encode_diffusers() -> None:
        with torch.inference_mode():
            reference.encode_prompt(texts.prompt(), None, max_sequence_length=max_len)

    def encode_ours() -> None:
        pipe.encode_texts([texts.prompt()])

    w, r = settings.warmup, settings.repeats
    ours_gen, theirs_gen = (
        measure(run_ours, warmup=w, repeats=r),
        measure(run_diffusers, warmup=w, repeats=r),
    )
    ours_enc, theirs_enc = (
        measure(encode_ours, warmup=w, repeats=r),
        measure(encode_diffusers, warmup=w, repeats=r),
    )
    if device == "cuda":
        torch.cuda.synchronize()
    return {
        "source": str(source),
        "device": device,
        "torch": torch.__version__,
        "resolution": list(resolution),
        "steps": steps,
        "load_s": load_s,
        "generate": {"ours": ours_gen.to_json(), "diffusers": theirs_gen.to_json()},
        "encode_prompt": {"ours": ours_enc.to_json(), "diffusers": theirs_enc.to_json()},
        "ours_over_diffusers": {
            "generate": ours_gen.median_s / theirs_gen.median_s,
            "encode_prompt": ours_enc.median_s / theirs_enc.median_s,
        },
    }


def _manifest_source_path(pipe: Any) -> Path | None:
    path = (pipe.engine.manifest.get("source") or {}).get("path")
    return Path(path) if isinstance(path, str) and Path(path).is_dir() else None


def scaling(
    pipe: Any, resolutions: Sequence[tuple[int, int]], steps: int, settings: ProfileSettings
) -> dict[str, Any]:
    """How latency grows with K, with the T5 text length and with the resolution."""
    warmup, repeats = settings.warmup, settings.repeats
    smallest = resolutions[0]
    params = _params(pipe, smallest, steps)
    texts = _Texts("scaling")
    ks = _powers_of_two_upto(pipe.max_candidates_per_batch)
    k_rows = []
    for k in ks:
        stats = measure(
            lambda k=k: pipe.generate(
                texts.prompt(), seed=0, negatives=texts.negatives(k), params=params
            ),
            warmup=warmup,
            repeats=repeats,
        )
        k_rows.append({"k": k, **stats.to_json()})
    t5 = pipe.engine.scoring_encoder.get("component", "text_encoder_2")
    t5_dims = pipe.engine.component(t5).dims["text_length"]
    lengths = sorted({*_powers_of_two_upto(t5_dims.max, start=8), t5_dims.max})
    length_rows = []
    for length in lengths:
        if length < t5_dims.min:
            continue
        sizes = {"batch": 1, "text_length": length}
        length_rows.append(
            {"text_length": length, **time_component(pipe, t5, sizes, warmup, repeats).to_json()}
        )
    resolution_rows = []
    for resolution in _resolution_ladder(pipe, resolutions):
        step = time_component(
            pipe, "transformer", _component_sizes(pipe, resolution, 1), warmup, repeats
        )
        gen = measure(
            lambda r=resolution: pipe.generate(
                texts.prompt(), seed=0, params=_params(pipe, r, steps)
            ),
            warmup=warmup,
            repeats=repeats,
        )
        resolution_rows.append(
            {
                "resolution": list(resolution),
                "pixels": resolution[0] * resolution[1],
                "denoise_step_batch_1": step.to_json(),
                "generate": gen.to_json(),
            }
        )
    return {
        "k": {"resolution": list(smallest), "steps": steps, "rows": k_rows},
        "text_length": {"component": t5, "batch": 1, "rows": length_rows},
        "resolution": {"steps": steps, "rows": resolution_rows},
    }


def _powers_of_two_upto(limit: int, start: int = 1) -> list[int]:
    values, value = [], start
    while value <= limit:
        values.append(value)
        value *= 2
    if not values or values[-1] != limit:
        values.append(limit)
    return values


def _resolution_ladder(pipe: Any, resolutions: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The profiled sizes plus square sizes between the engine's min and max (at most 5 in all)."""
    res = pipe.engine.pipeline.get("resolution", {})
    multiple = int(pipe.engine.pipeline.get("resolution_multiple", 16))
    low = min(int(v) for v in res.get("min", resolutions[0]))
    high = max(int(v) for v in res.get("max", resolutions[-1]))
    ladder = set(resolutions)
    for size in np.linspace(low, high, 4):
        side = max(low, int(round(size / multiple)) * multiple)
        try:
            pipe.config.check_size(side, side)
        except Exception:
            continue
        ladder.add((side, side))
    return sorted(ladder, key=lambda s: s[0] * s[1])[:6]


class _MemoryWatch:
    def __init__(self) -> None:
        self.samples: list[dict[str, Any]] = []

    def sample(self, stage: str) -> None:
        self.samples.append(
            {
                "after": stage,
                "peak_rss_mb": peak_rss_mb(),
                "rss_mb": current_rss_mb(),
                "device": device_memory_mb(),
            }
        )

    def to_json(self) -> dict[str, Any]:
        device_peak = None
        for sample in self.samples:
            for gpu in (sample["device"] or {}).get("gpus", []):
                device_peak = max(device_peak or 0.0, gpu["used_mb"])
        before_torch = [x["peak_rss_mb"] for x in self.samples if x["after"] != "diffusers"]
        return {
            "peak_rss_mb": peak_rss_mb(),
            "peak_rss_mb_without_diffusers": max(before_torch, default=peak_rss_mb()),
            "device_peak_used_mb": device_peak,
            "by_section": self.samples,
        }


def _engine_info(pipe: Any, engine_dir: Path) -> dict[str, Any]:
    engine = pipe.engine
    return {
        "dir": str(engine_dir),
        "family": engine.family,
        "precision": engine.precision,
        "manifest_hash": engine.manifest_hash,
        "max_batch": int(engine.pipeline.get("max_batch", 0)),
        "max_sequence_length": int(pipe.config.max_sequence_length),
        "onnx_mb": sum(
            (c.file.bytes + sum(x.bytes for x in c.external_data))
            for c in engine.components.values()
        )
        / 1e6,
    }


def _environment(pipe: Any) -> dict[str, Any]:
    import os

    import npc_rt
    import onnxruntime

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "npc_rt": npc_rt.__version__,
        "onnxruntime": onnxruntime.__version__,
        "backend": pipe.backend.name,
    }


# -- outputs --------------------------------------------------------------------------------------


def write_outputs(report: dict[str, Any], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "profile.json", out_dir / "profile.md"]
    paths[0].write_text(json.dumps(report, indent=2) + "\n")
    paths[1].write_text(render_markdown(report) + "\n")
    plot = write_plot(report, out_dir / "profile.png")
    if plot is not None:
        paths.append(plot)
    return paths


def _ms(stats: dict[str, Any]) -> str:
    return f"{stats['median_s'] * 1e3:.2f} ± {stats['iqr_s'] * 1e3:.2f}"


def render_markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    e = report["engine"]
    lines = [
        f"# Profile of {e['dir']} ({e['family']}, {e['precision']}, {e['onnx_mb']:.1f} MB ONNX)",
        "",
        f"{report['environment']['backend']}, {report['environment']['cpu_count']} CPUs; "
        f"steps {s['steps']}, K {s['k']}; median ± IQR over {s['repeats']} runs after "
        f"{s['warmup']} warm-up (ms unless noted).",
        "",
    ]
    comps = report.get("components")
    if isinstance(comps, list):
        encoders = list(comps[0]["text_encoders"]) if comps else []
        header = ["resolution", *encoders, "step b=1", "step b=2", "step b=2K", "VAE decode"]
        lines += ["## Components", "", "| " + " | ".join(header) + " |"]
        lines.append("|" + "---|" * len(header))
        for row in comps:
            cells = [f"{row['resolution'][0]}x{row['resolution'][1]}"]
            cells += [_ms(row["text_encoders"][n]) for n in encoders]
            cells += [_ms(row["denoise_step"][b]) for b in ("batch_1", "batch_2", "batch_2k")]
            cells.append(_ms(row["vae_decode"]))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    e2e = report.get("end_to_end")
    if isinstance(e2e, list):
        lines += [
            "## End to end",
            "",
            "| resolution | generate | generate + K negatives | correct batched | "
            "correct sequential | batched / sequential |",
            "|---|---|---|---|---|---|",
        ]
        for row in e2e:
            lines.append(
                f"| {row['resolution'][0]}x{row['resolution'][1]} | {_ms(row['generate'])} | "
                f"{_ms(row['generate_k_negatives'])} | {_ms(row['correct_batched'])} | "
                f"{_ms(row['correct_sequential'])} | "
                f"{row['correct_batched_over_sequential']:.2f}x |"
            )
        lines += [
            "",
            f"(correct: fixed-latency judge {e2e[0]['judge_latency_s'] * 1e3:.0f} ms a call that "
            "rejects every image, so all K candidates are generated.)",
            "",
        ]
    cold = report.get("cold_start")
    if isinstance(cold, dict) and "skipped" not in cold:
        lines += [
            "## Cold start (fresh process)",
            "",
            f"import npc_rt {_ms(cold['import_s'])}; engine load {_ms(cold['load_s'])}; first "
            f"generate {_ms(cold['first_generate_s'])}; second {_ms(cold['second_generate_s'])}; "
            f"peak RSS {cold['peak_rss_mb']:.0f} MB.",
            "",
        ]
    rank = report.get("ranking")
    if isinstance(rank, dict) and "skipped" not in rank:
        lines += [
            "## Ranking K candidates",
            "",
            f"reference path ({rank['reference']['encoder_calls']} encoder calls at "
            f"{rank['padded_length']} tokens): {_ms(rank['reference'])}; ours (one batched "
            f"call, Rust scoring): {_ms(rank['ours'])}; **{rank['reference_over_ours']:.1f}x** "
            f"faster; same order: {rank['same_order']}.",
            "",
        ]
    diff = report.get("diffusers")
    if isinstance(diff, dict):
        lines += ["## diffusers on the same weights", ""]
        if "skipped" in diff:
            lines += [f"skipped: {diff['skipped']}", ""]
        else:
            ratio = diff["ours_over_diffusers"]
            lines += [
                f"{diff['resolution'][0]}x{diff['resolution'][1]}, {diff['steps']} steps, "
                f"diffusers on {diff['device']} (torch {diff['torch']}):",
                "",
                "| | ours | diffusers | ours / diffusers |",
                "|---|---|---|---|",
                f"| generate | {_ms(diff['generate']['ours'])} | "
                f"{_ms(diff['generate']['diffusers'])} | {ratio['generate']:.3g}x |",
                f"| encode prompt | {_ms(diff['encode_prompt']['ours'])} | "
                f"{_ms(diff['encode_prompt']['diffusers'])} | {ratio['encode_prompt']:.3g}x |",
                "",
            ]
    mem = report["memory"]
    device = (
        f"; device peak used {mem['device_peak_used_mb']:.0f} MB"
        if mem["device_peak_used_mb"]
        else ""
    )
    lines += [
        "## Memory",
        "",
        f"peak host RSS {mem['peak_rss_mb_without_diffusers']:.0f} MB for npc_rt"
        + (
            f" ({mem['peak_rss_mb']:.0f} MB once diffusers and torch were loaded)"
            if isinstance(diff, dict) and "skipped" not in diff
            else ""
        )
        + f"{device}.",
        "",
    ]
    return "\n".join(lines)


def write_plot(report: dict[str, Any], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    comps = report.get("components")
    ax = axes[0][0]
    if isinstance(comps, list) and comps:
        names = [*comps[0]["text_encoders"], "step b=1", "step b=2", "step b=2K", "VAE decode"]
        x = np.arange(len(names))
        width = 0.8 / len(comps)
        for i, row in enumerate(comps):
            values = [row["text_encoders"][n]["median_s"] for n in comps[0]["text_encoders"]]
            values += [
                row["denoise_step"][b]["median_s"] for b in ("batch_1", "batch_2", "batch_2k")
            ]
            values.append(row["vae_decode"]["median_s"])
            ax.bar(
                x + i * width,
                np.asarray(values) * 1e3,
                width,
                label="x".join(map(str, row["resolution"])),
            )
        ax.set_xticks(x + width * (len(comps) - 1) / 2, names, rotation=20, ha="right", fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("ms (median)")
        ax.set_title("components")
        ax.legend(fontsize=7)
    scale = report.get("scaling")
    if isinstance(scale, dict) and "skipped" not in scale:
        rows = scale["k"]["rows"]
        _line(axes[0][1], [r["k"] for r in rows], rows, "K candidates (one batched generate)", "K")
        rows = scale["text_length"]["rows"]
        _line(
            axes[1][0], [r["text_length"] for r in rows], rows, "T5 encode vs text length", "tokens"
        )
        rows = scale["resolution"]["rows"]
        px = [r["pixels"] / 1e6 for r in rows]
        steps = report["settings"]["steps"]
        _line(
            axes[1][1],
            px,
            [r["generate"] for r in rows],
            "generate vs resolution",
            "megapixels",
            f"generate ({steps} steps)",
        )
        _line(
            axes[1][1],
            px,
            [r["denoise_step_batch_1"] for r in rows],
            None,
            "megapixels",
            "step b=1",
        )
        axes[1][1].legend(fontsize=7)
    fig.suptitle(f"npc_rt profile: {report['engine']['dir']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _line(
    ax: Any,
    x: Sequence[float],
    rows: Sequence[dict[str, Any]],
    title: str | None,
    xlabel: str,
    label: str | None = None,
) -> None:
    med = np.asarray([r["median_s"] for r in rows]) * 1e3
    low = np.asarray([r["q1_s"] for r in rows]) * 1e3
    high = np.asarray([r["q3_s"] for r in rows]) * 1e3
    ax.plot(x, med, marker="o", label=label)
    ax.fill_between(x, low, high, alpha=0.25)
    if title:
        ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("ms (median, IQR band)")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
