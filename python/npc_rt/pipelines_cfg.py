"""Real classifier-free guidance sampling (SDXL, SD3) over an engine directory, batched over
candidates.

Each step runs the backbone on ``[uncond_0 .. uncond_{K-1}, cond_0 .. cond_{K-1}]`` (diffusers'
order) and combines ``uncond + s * (cond - uncond)`` with ``s`` = ``params.guidance`` (diffusers'
``guidance_scale``; ``params.true_cfg`` is FLUX's and unused here). NPC's negative takes the empty
prompt's place in candidate k's uncond row while ``step < negative_steps``; the empty prompt's
embedding (SDXL base: zeros, ``force_zeros_for_empty_prompt``) is used after. The default
``negative_steps`` is every step, which is diffusers with ``negative_prompt``. Every candidate starts
from the seed's noise, so K candidates in one call equal K separate calls. ``guidance <= 1`` turns
CFG off as diffusers does (cond rows only; negatives then have no effect).

What differs per family (text encoders, schedule, backbone inputs, VAE preamble) is a
``CfgFamily`` (``npc_rt.families.sdxl.SdxlFamily``, ``npc_rt.families.sd3.Sd3Family``). Text
tokenization, the text LRU cache and tokenizer loading are the FLUX pipeline's helpers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from npc_rt.backends.base import Backend
from npc_rt.engine import Engine
from npc_rt.errors import EngineError, InvalidInputError, ShapeError
from npc_rt.families import flux
from npc_rt.families.cfg_config import CfgConfig, TextEmbedding
from npc_rt.families.common import default_image_size
from npc_rt.generator import GenerationParams
from npc_rt.pipeline import (
    _NOISE_DTYPE,
    Randn,
    _default_randn,
    _encode_tokens,
)
from npc_rt.pipeline import Pipeline as _FluxPipeline
from npc_rt.pipeline_base import BatchedPipeline, Samples, _LruCache
from npc_rt.resident import ResidentLoop, cfg_rows, denoise_resident, resident_backend

EMPTY_PROMPT = ""


class CfgFamily(Protocol):
    """A real-CFG family's part of the loop; see ``families/sdxl.py`` for the reference one."""

    family: str
    backbone: str
    vae_decoder: str
    scoring_component: str
    scoring_tokenizer: str
    scoring_output: str

    @property
    def config(self) -> CfgConfig: ...

    def encode(self, texts: Sequence[str], ids: Callable, run: Callable) -> list[TextEmbedding]: ...

    def empty_embedding(self, encode_empty: Callable[[], TextEmbedding]) -> TextEmbedding: ...

    def schedule(self, steps: int, height: int, width: int) -> Any: ...

    def initial_latents(self, noise: np.ndarray, schedule: Any) -> np.ndarray: ...

    skip_layer_blocks: int
    """Blocks the backbone can skip per row (SD3's skip-layer guidance); 0: none."""

    def text_rows(
        self,
        embeddings: Sequence[TextEmbedding],
        params: GenerationParams,
        uncond_rows: int,
        skip_rows: int = 0,
    ) -> dict[str, np.ndarray]:
        """The backbone's text inputs for these rows; the first ``uncond_rows`` are
        unconditional (SDXL conditions them on the negative size triple), the last
        ``skip_rows`` skip ``params.skip_layer_guidance.layers``."""
        ...

    latent_input: str

    @property
    def prediction(self) -> str:
        """The sampler step's prediction type: "flow", "epsilon" or "v_prediction"."""
        ...

    def model_input_divisor(self, schedule: Any, step: int) -> np.float32:
        """The backbone's latent input at ``step`` is ``latents / model_input_divisor``."""
        ...

    def step_inputs(self, schedule: Any, step: int, rows: int) -> dict[str, np.ndarray]:
        """The backbone's per-step inputs besides the latents (the timestep) for ``rows`` rows."""
        ...

    def step(
        self, latents: np.ndarray, pred: np.ndarray, schedule: Any, step: int
    ) -> np.ndarray: ...

    def vae_input(self, latents: np.ndarray) -> np.ndarray: ...


def cfg_combine(uncond: np.ndarray, cond: np.ndarray, scale: float) -> np.ndarray:
    """``uncond + scale * (cond - uncond)`` in diffusers' operation order (float32)."""
    if uncond.shape != cond.shape:
        raise ShapeError(f"uncond {uncond.shape} and cond {cond.shape} predictions differ")
    return uncond + np.float32(scale) * (cond - uncond)


class CfgScoringEncoder:
    """The family's scoring text encoder (``generator.ScoringEncoder``): SDXL's OpenCLIP-bigG
    hidden states (CLIP is causal, so the mask only matters to the pooling), SD3's T5."""

    def __init__(self, pipeline: CfgPipeline) -> None:
        self._pipeline = pipeline

    @property
    def tokenizer(self) -> Any:
        return self._pipeline.tokenizer(self._pipeline.family_impl.scoring_tokenizer)

    def encode(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        ids, mask = np.asarray(input_ids), np.asarray(attention_mask)
        if ids.ndim != 2 or ids.shape != mask.shape:
            raise ShapeError(
                f"input_ids {ids.shape} and attention_mask {mask.shape} must be equal [N, L]"
            )
        fam = self._pipeline.family_impl
        spec = self._pipeline.engine.component(fam.scoring_component)
        inputs = {"input_ids": ids.astype(np.int64)}
        if "attention_mask" in spec.input_names:
            inputs["attention_mask"] = mask.astype(np.int64)
        return self._pipeline.run(fam.scoring_component, inputs)[fam.scoring_output]


class CfgPipeline(BatchedPipeline):
    """SDXL / SD3 over an engine directory and a backend (``generator.ImageGenerator``)."""

    def __init__(
        self,
        engine: Engine,
        backend: Backend,
        family: CfgFamily,
        *,
        randn: Randn | None = None,
        text_cache_size: int = 64,
        resident: bool | None = None,
    ) -> None:
        self._engine = engine
        self._backend = backend
        self._family = family
        self._resident = resident_backend(backend, engine, family.prediction, resident)
        self._config = family.config
        self._randn = randn
        self._cache = _LruCache(text_cache_size)
        self._tokenizers: dict[str, Any] = {}
        self._empty: TextEmbedding | None = None

    # -- ImageGenerator ---------------------------------------------------------------------
    @property
    def family(self) -> str:
        return self._family.family

    @property
    def family_impl(self) -> CfgFamily:
        return self._family

    @property
    def config(self) -> CfgConfig:
        return self._config

    @property
    def default_params(self) -> GenerationParams:
        c = self._config
        height, width = default_image_size(
            (c.default_height, c.default_width), c.min_size, c.max_size, c.opt_size
        )
        return GenerationParams(
            steps=c.default_steps,
            height=height,
            width=width,
            guidance=c.default_guidance_scale,
            true_cfg=1.0,
            negative_steps=None,
        )

    @property
    def _backbone(self) -> str:
        return self._family.backbone

    def scoring_encoder(self) -> CfgScoringEncoder:
        return CfgScoringEncoder(self)

    @property
    def resident(self) -> bool:
        """Whether the latents stay on the backend's device between steps (``npc_rt.resident``)."""
        return self._resident

    # -- sampling ---------------------------------------------------------------------------
    def default_negative_steps(self, steps: int) -> int:
        return steps  # SDXL/SD3: the negative replaces the empty prompt on every step

    def _sample_batch(
        self, prompt: str, seed: int, negatives: list[str | None], params: GenerationParams
    ) -> Samples:
        t0 = time.perf_counter()
        texts = [prompt] + [n for n in negatives if n is not None]
        embeddings = dict(zip(texts, self.encode_texts(texts), strict=True))
        empty = self.empty_embedding()
        t1 = time.perf_counter()
        uncond_with = [empty if n is None else embeddings[n] for n in negatives]
        cond = embeddings[prompt].as_prompt()  # clip_skip engines: the prompt's own layer
        latents = self.denoise(cond, uncond_with, empty, seed, params)
        t2 = time.perf_counter()
        images = self.decode(latents)
        t3 = time.perf_counter()
        return Samples(images, {"encode": t1 - t0, "denoise": t2 - t1, "decode": t3 - t2})

    def initial_noise(self, seed: int, height: int, width: int) -> np.ndarray:
        """``[1, C, h, w]`` float32: the torch.randn draw of the pipeline's prepare_latents, in
        the engine's dtype as diffusers draws it (then widened; the loop runs in float32)."""
        randn = self._randn or _default_randn()
        shape = self._config.noise_shape(height, width)
        dtype = _NOISE_DTYPE.get(self._engine.precision, "float32")
        return np.asarray(randn(shape, seed, dtype=dtype), dtype=np.float32)

    def denoise(
        self,
        cond: TextEmbedding,
        uncond_with_negatives: Sequence[TextEmbedding],
        empty: TextEmbedding,
        seed: int,
        params: GenerationParams,
    ) -> np.ndarray:
        """Latents ``[K, C, h, w]`` after ``params.steps`` steps; candidate k's uncond row is
        ``uncond_with_negatives[k]`` while ``step < negative_steps``, ``empty`` after."""
        fam = self._family
        k = len(uncond_with_negatives)
        h, w = params.height, params.width
        schedule = fam.schedule(params.steps, h, w)
        noise = self.initial_noise(seed, h, w)
        latents = np.repeat(fam.initial_latents(noise, schedule), k, axis=0)
        do_cfg = params.guidance > 1
        # skip-layer guidance needs CFG (diffusers ignores it without, and so does this)
        slg = params.skip_layer_guidance if do_cfg else None
        steps = params.steps

        def phase_of(i: int) -> int:
            """bit 0: negatives apply; bit 1: the skip-layer pass runs (3K rows, not 2K)."""
            if not do_cfg:
                return 0
            skip = slg is not None and slg.active(i, steps)
            return 2 * int(skip) + int(i < params.negative_steps)

        layouts = [
            cfg_rows(k, do_cfg, slg.scale if (slg is not None and ph & 2) else None)
            for ph in range(4)
        ]
        texts: list[dict] = [{} for _ in range(4)]
        for ph in sorted({phase_of(i) for i in range(steps)}):
            texts[ph] = {
                n: self._backend.place(a)
                for n, a in self._text_rows(
                    cond, uncond_with_negatives if ph & 1 else [empty] * k, params, ph & 2, do_cfg
                ).items()
            }
        output = self._engine.component(fam.backbone).output_names[0]
        if self._resident:
            loop = ResidentLoop(
                backbone=fam.backbone,
                latent_input=fam.latent_input,
                output=output,
                guidance=params.guidance if do_cfg else 1.0,
                sigmas=schedule.sigmas,
                input_divisors=np.array(
                    [fam.model_input_divisor(schedule, i) for i in range(steps)],
                    dtype=np.float32,
                ),
                phases=layouts,
                texts=texts,
                phase_of=phase_of,
                step_inputs=lambda i, rows: fam.step_inputs(schedule, i, rows),
            )
            return denoise_resident(self._backend, loop, latents)  # type: ignore[arg-type]
        for i in range(steps):
            phase = phase_of(i)
            copies = layouts[phase].model_rows.shape[0] // k
            rows = np.concatenate([latents] * copies) if copies > 1 else latents
            inputs = {
                fam.latent_input: rows / fam.model_input_divisor(schedule, i),
                **fam.step_inputs(schedule, i, rows.shape[0]),
                **texts[phase],
            }
            out = self._backend.run(fam.backbone, inputs)[output]
            if not do_cfg:
                pred = out
            else:
                pred = cfg_combine(out[:k], out[k : 2 * k], params.guidance)
                if phase & 2:  # diffusers: pred + (cond - skipped) * scale
                    skipped = out[2 * k :]
                    pred = pred + (out[k : 2 * k] - skipped) * np.float32(slg.scale)
            latents = fam.step(latents, pred, schedule, i)
        return latents

    def _text_rows(
        self,
        cond: TextEmbedding,
        uncond: Sequence[TextEmbedding],
        params: GenerationParams,
        skip_pass: int,
        do_cfg: bool,
    ) -> dict[str, np.ndarray]:
        """The backbone's text inputs: ``[uncond x K, cond x K]`` (plus ``cond x K`` with the
        guidance layers skipped when ``skip_pass``), or ``cond x K`` without CFG."""
        k = len(uncond)
        if not do_cfg:
            return self._family.text_rows([cond] * k, params, 0)
        copies = 2 if skip_pass else 1
        return self._family.text_rows(
            [*uncond, *[cond] * (k * copies)], params, k, k if skip_pass else 0
        )

    def _check_params(self, params: GenerationParams) -> None:
        slg = params.skip_layer_guidance
        if slg is None:
            return
        blocks = self._family.skip_layer_blocks
        if not blocks:
            raise EngineError(
                f"engine {self._engine.root}: the transformer has no skip_layers input (exported "
                "by an older npc_rt_export); re-export it for skip-layer guidance"
            )
        if max(slg.layers) >= blocks:
            raise InvalidInputError(
                f"skip-layer guidance layers {list(slg.layers)}: the transformer has {blocks} "
                f"blocks (0..{blocks - 1})"
            )

    def _candidates_per_call(self, params: GenerationParams) -> int:
        slg = params.skip_layer_guidance
        skip_pass = (
            slg is not None
            and params.guidance > 1
            and any(slg.active(i, params.steps) for i in range(params.steps))
        )
        return max(1, self._batch_max(self._backbone) // (3 if skip_pass else 2))

    def decode(self, latents: np.ndarray) -> np.ndarray:
        """Latents -> float images ``[K, H, W, 3]`` in [0, 1]."""
        image = self.run(self._family.vae_decoder, {"latents": self._family.vae_input(latents)})
        return flux.postprocess(image["image"])

    # -- text -------------------------------------------------------------------------------
    def encode_texts(self, texts: Sequence[str]) -> list[TextEmbedding]:
        """One embedding per text; unseen texts are encoded together, seen ones are cached."""
        found = {t: self._cache.get(t) for t in dict.fromkeys(texts)}
        todo = [t for t, e in found.items() if e is None]
        if todo:
            for text, emb in zip(
                todo, self._family.encode(todo, self.token_ids, self.run), strict=True
            ):
                self._cache.put(text, emb)
                found[text] = emb
        return [found[t] for t in texts]  # type: ignore[misc]

    def clear_text_cache(self) -> None:
        """Forget every cached text embedding (the empty prompt's too); tokenizers stay loaded."""
        self._cache = _LruCache(self._cache.capacity)
        self._empty = None

    def empty_embedding(self) -> TextEmbedding:
        if self._empty is None:
            self._empty = self._family.empty_embedding(
                lambda: self._family.encode([EMPTY_PROMPT], self.token_ids, self.run)[0]
            )
        return self._empty

    def token_ids(self, tokenizer_name: str, texts: Sequence[str]) -> np.ndarray:
        spec = self._engine.tokenizer(tokenizer_name)
        if spec.pad_id is None:
            raise EngineError(f"tokenizer {spec.name} has no pad_id in the manifest")
        return _encode_tokens(self.tokenizer(tokenizer_name), texts, spec.max_length, spec.pad_id)

    def tokenizer(self, name: str) -> Any:
        if name not in self._tokenizers:
            # the FLUX pipeline's loader uses nothing of its instance: preset rules, manifest width
            self._tokenizers[name] = _FluxPipeline._load_tokenizer(
                self, self._engine.tokenizer(name)
            )  # type: ignore[arg-type]
        return self._tokenizers[name]

    # -- helpers ----------------------------------------------------------------------------
    def run(self, component: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run ``component`` over the rows of ``inputs`` in chunks its batch profile accepts."""
        n = next(iter(inputs.values())).shape[0]
        step = self._batch_max(component)
        parts = [
            self._backend.run(component, {k: v[i : i + step] for k, v in inputs.items()})
            for i in range(0, n, step)
        ]
        if len(parts) == 1:
            return parts[0]
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def cfg_family_for(engine: Engine) -> CfgFamily:
    """The ``CfgFamily`` of an SDXL or SD3 engine."""
    if engine.family == "sdxl":
        from npc_rt.families.sdxl import SdxlFamily

        return SdxlFamily.from_engine(engine)
    if engine.family == "sd3":
        from npc_rt.families.sd3 import Sd3Family

        return Sd3Family.from_engine(engine)
    raise EngineError(f"no CFG pipeline for family {engine.family!r}")


def load_cfg_engine(
    engine: Engine,
    backend: Backend | None = None,
    *,
    providers: Sequence[str] | None = None,
    text_cache_size: int = 64,
    resident: bool | None = None,
) -> CfgPipeline:
    """An opened SDXL/SD3 engine with its sessions and tokenizers loaded, on ``backend``
    (default: ONNX Runtime with ``providers``)."""
    if backend is None:
        from npc_rt.backends.ort import OrtBackend

        backend = OrtBackend(engine, providers)
    family = cfg_family_for(engine)
    pipeline = CfgPipeline(
        engine, backend, family, text_cache_size=text_cache_size, resident=resident
    )
    backend.load()
    for name in engine.tokenizers:
        pipeline.tokenizer(name)
    return pipeline


__all__ = ["CfgFamily", "CfgPipeline", "CfgScoringEncoder", "cfg_combine", "load_cfg_engine"]
