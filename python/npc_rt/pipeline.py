"""FLUX sampling over an engine directory: encode -> denoise -> decode, batched over candidates.

``Pipeline`` satisfies ``npc_rt.generator.ImageGenerator``. K negatives for one prompt and seed
run as one batched denoising loop (``guidance.GuidanceLayout``): the K cond rows plus one neg row
per candidate with a negative while ``step < negative_steps``, the K cond rows after. Every
candidate starts from the same noise (the seed's ``torch.randn`` draw for one image), so the batch
gives the same K images as K separate calls.

Text embeddings are cached per text (LRU) inside the pipeline: the NPC loop re-generates the same
prompt many times, and the prompt is encoded once.

Precision: the loop itself (Euler steps, true CFG) runs in float32 for every engine precision;
the initial noise is drawn in the engine's dtype exactly as diffusers draws it (``randn`` in
fp16/bf16, then widened). A half-precision diffusers run also rounds the latents to its dtype
after every step; this loop does not, so fp16/bf16 engines match a float32-latents reference
rather than diffusers' half-precision one. A ``Pipeline`` is not thread-safe (the text cache);
use one per thread, they share the ONNX Runtime sessions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from npc_rt.backends.base import Backend
from npc_rt.engine import Engine, open_engine
from npc_rt.errors import EngineError, InvalidInputError, ShapeError
from npc_rt.families import flux
from npc_rt.families.common import default_image_size
from npc_rt.generator import GenerationParams
from npc_rt.guidance import GuidanceLayout
from npc_rt.pipeline_base import BatchedPipeline, Samples, _LruCache
from npc_rt.resident import ResidentLoop, denoise_resident, flux_rows, resident_backend
from npc_rt.schedule import FlowMatchConfig, euler_step_into, flux_schedule

DEFAULT_TRUE_CFG = 1.8
DEFAULT_NEGATIVE_STEPS = 3
TRANSFORMER_INPUTS = frozenset(
    {
        "hidden_states",
        "encoder_hidden_states",
        "pooled_projections",
        "timestep",
        "img_ids",
        "txt_ids",
    }
)
_NOISE_DTYPE = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}

Randn = Callable[..., np.ndarray]
"""``randn(shape, seed, dtype=...) -> float32 array``, torch's CPU ``randn`` for that seed."""


@dataclass(frozen=True, eq=False)
class TextEmbedding:
    """One text's conditioning: a sequence ``[L, D]`` and a pooled vector ``[P]`` (FLUX: T5 and
    CLIP pooled). ``prompt_sequence``: the sequence to use when the text is the prompt, where that
    differs (an SDXL/SD3 engine exported with clip_skip: diffusers applies it to prompts only)."""

    sequence: np.ndarray
    pooled: np.ndarray
    prompt_sequence: np.ndarray | None = None

    def as_prompt(self) -> TextEmbedding:
        """This embedding as the prompt's conditioning."""
        if self.prompt_sequence is None:
            return self
        return TextEmbedding(self.prompt_sequence, self.pooled)


def _encode_tokens(tokenizer: Any, texts: Sequence[str], length: int, pad_id: int) -> np.ndarray:
    """Ids ``[N, length]`` int64 laid out as diffusers' tokenizers give them with
    ``padding="max_length", truncation=True``.

    The engine's tokenizers are loaded with exactly that layout; a tokenizer passed in with
    another row width is re-laid out here (truncation keeps the trailing special token).
    """
    batch = tokenizer.encode_batch(list(texts), padding="max_length")
    ids = np.asarray(batch.input_ids, dtype=np.int64)
    if ids.shape[1] == length:
        return ids
    mask = np.asarray(batch.attention_mask, dtype=bool)
    out = np.full((ids.shape[0], length), pad_id, dtype=np.int64)
    for i in range(ids.shape[0]):
        tokens = ids[i][mask[i]]
        if tokens.shape[0] > length:
            tokens = np.concatenate([tokens[: length - 1], tokens[-1:]])
        out[i, : tokens.shape[0]] = tokens
    return out


class FluxScoringEncoder:
    """T5 with an attention mask, for the salient score (``generator.ScoringEncoder``)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline

    @property
    def tokenizer(self) -> Any:
        return self._pipeline.t5_tokenizer

    def encode(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        ids = np.asarray(input_ids)
        mask = np.asarray(attention_mask)
        if ids.ndim != 2 or ids.shape != mask.shape:
            raise ShapeError(
                f"input_ids {ids.shape} and attention_mask {mask.shape} must be equal [N, L]"
            )
        return self._pipeline._run_batched(
            flux.T5, {"input_ids": ids.astype(np.int64), "attention_mask": mask.astype(np.int64)}
        )


class Pipeline(BatchedPipeline):
    """FLUX over an engine directory and a backend; see the module docstring."""

    def __init__(
        self,
        engine: Engine,
        backend: Backend,
        *,
        clip_tokenizer: Any = None,
        t5_tokenizer: Any = None,
        randn: Randn | None = None,
        text_cache_size: int = 64,
        resident: bool | None = None,
    ) -> None:
        self._engine = engine
        self._backend = backend
        self._config = flux.FluxConfig.from_engine(engine)
        self._scheduler = FlowMatchConfig.from_dict(engine.scheduler_config)
        transformer = engine.component(flux.TRANSFORMER)
        missing = TRANSFORMER_INPUTS - set(transformer.input_names)
        if missing:
            raise EngineError(f"the transformer lacks inputs {sorted(missing)}")
        self._transformer_output = transformer.output_names[0]
        self._clip_spec = engine.tokenizer(flux.CLIP_TOKENIZER)
        self._t5_spec = engine.tokenizer(flux.T5_TOKENIZER)
        self._clip_tokenizer = clip_tokenizer
        self._t5_tokenizer = t5_tokenizer
        self._randn = randn
        self._cache = _LruCache(text_cache_size)
        self._noise_dtype = _NOISE_DTYPE.get(engine.precision, "float32")
        self._resident = resident_backend(backend, engine, "flow", resident)

    # -- ImageGenerator ---------------------------------------------------------------------
    @property
    def family(self) -> str:
        return flux.FAMILY

    @property
    def config(self) -> flux.FluxConfig:
        return self._config

    @property
    def default_params(self) -> GenerationParams:
        c = self._config
        opt = self._engine.pipeline.get("resolution", {}).get("opt", c.max_size)
        height, width = default_image_size(
            (c.default_height, c.default_width), c.min_size, c.max_size, opt
        )
        return GenerationParams(
            steps=c.default_steps,
            height=height,
            width=width,
            guidance=c.default_guidance_scale,
            true_cfg=DEFAULT_TRUE_CFG,
            negative_steps=DEFAULT_NEGATIVE_STEPS,
        )

    _backbone = flux.TRANSFORMER

    @property
    def t5_tokenizer(self) -> Any:
        if self._t5_tokenizer is None:
            self._t5_tokenizer = self._load_tokenizer(self._t5_spec)
        return self._t5_tokenizer

    @property
    def clip_tokenizer(self) -> Any:
        if self._clip_tokenizer is None:
            self._clip_tokenizer = self._load_tokenizer(self._clip_spec)
        return self._clip_tokenizer

    def scoring_encoder(self) -> FluxScoringEncoder:
        return FluxScoringEncoder(self)

    @property
    def resident(self) -> bool:
        """Whether the latents stay on the backend's device between steps (``npc_rt.resident``)."""
        return self._resident

    # -- sampling ---------------------------------------------------------------------------
    def default_negative_steps(self, steps: int) -> int:
        return min(DEFAULT_NEGATIVE_STEPS, steps)

    def _check_params(self, params: GenerationParams) -> None:
        if params.true_cfg < 1:
            raise InvalidInputError(
                f"true_cfg must be >= 1 (1 disables the negative), got {params.true_cfg}"
            )

    def _sample_batch(
        self, prompt: str, seed: int, negatives: list[str | None], params: GenerationParams
    ) -> Samples:
        t0 = time.perf_counter()
        layout = GuidanceLayout.for_negatives(negatives, params.true_cfg)
        texts = [prompt] + [negatives[k] for k in layout.negative_candidates]
        embeddings = self.encode_texts(texts)
        t1 = time.perf_counter()
        latents = self.denoise(embeddings[0], embeddings[1:], layout, seed, params)
        t2 = time.perf_counter()
        images = self.decode(latents, params.height, params.width)
        t3 = time.perf_counter()
        return Samples(images, {"encode": t1 - t0, "denoise": t2 - t1, "decode": t3 - t2})

    def initial_noise(self, seed: int, height: int, width: int) -> np.ndarray:
        """Packed ``[1, S, 4C]`` float32: torch.randn of FluxPipeline.prepare_latents, packed."""
        randn = self._randn or _default_randn()
        noise = randn(flux.noise_shape(height, width, self._config), seed, dtype=self._noise_dtype)
        return flux.pack_latents(np.asarray(noise, dtype=np.float32))

    def denoise(
        self,
        cond: TextEmbedding,
        negs: Sequence[TextEmbedding],
        layout: GuidanceLayout,
        seed: int,
        params: GenerationParams,
    ) -> np.ndarray:
        """Packed latents ``[K, S, 4C]`` after ``params.steps`` Euler steps."""
        k = layout.num_candidates
        h, w = self._config.latent_size(params.height, params.width)
        latents = np.repeat(self.initial_noise(seed, params.height, params.width), k, axis=0)
        schedule = flux_schedule(self._scheduler, params.steps, latents.shape[1])
        scratch = np.empty_like(latents)
        place = self._backend.place
        img_ids = place(flux.image_ids(h // 2, w // 2))
        txt_ids = place(flux.text_ids(cond.sequence.shape[0]))
        uses_negatives = bool(layout.negative_candidates) and params.negative_steps > 0
        # the text rows per phase are constant across steps: build (and upload) them once; the
        # cond-only phase's rows are the first K of the negative phase's (no second copy)
        rows_all = self._text_rows(
            [cond] * k + (list(negs) if uses_negatives else []), params.guidance
        )
        phases = {False: {name: place(a[:k]) for name, a in rows_all.items()}}
        if uses_negatives:
            phases[True] = {name: place(a) for name, a in rows_all.items()}
        if self._resident:
            ids = {"img_ids": img_ids, "txt_ids": txt_ids}
            order = [False, True] if uses_negatives else [False]
            loop = ResidentLoop(
                backbone=flux.TRANSFORMER,
                latent_input="hidden_states",
                output=self._transformer_output,
                guidance=params.true_cfg,
                sigmas=schedule.sigmas,
                input_divisors=np.ones(params.steps, dtype=np.float32),
                phases=[flux_rows(layout, with_negs) for with_negs in order],
                texts=[{**phases[with_negs], **ids} for with_negs in order],
                phase_of=lambda i: int(uses_negatives and i < params.negative_steps),
                step_inputs=lambda i, rows: {
                    "timestep": np.full((rows,), schedule.model_timestep(i), np.float32)
                },
            )
            return denoise_resident(self._backend, loop, latents)  # type: ignore[arg-type]
        for i in range(params.steps):
            with_negs = uses_negatives and i < params.negative_steps
            rows = layout.row_candidates(with_negs)
            text = phases[with_negs]
            inputs = {
                "hidden_states": latents[rows] if with_negs else latents,
                "timestep": np.full((rows.shape[0],), schedule.model_timestep(i), np.float32),
                "img_ids": img_ids,
                "txt_ids": txt_ids,
                **text,
            }
            out = self._backend.run(flux.TRANSFORMER, inputs)[self._transformer_output]
            pred = layout.combine(out, params.true_cfg, with_negs)
            latents = euler_step_into(latents, pred, schedule.step_delta(i), scratch)
        return latents

    def _text_rows(
        self, embeddings: Sequence[TextEmbedding], guidance: float
    ) -> dict[str, np.ndarray]:
        rows = {
            "encoder_hidden_states": np.stack([e.sequence for e in embeddings]),
            "pooled_projections": np.stack([e.pooled for e in embeddings]),
        }
        if self._config.guidance_embeds:
            rows["guidance"] = flux.guidance_input(guidance, len(embeddings))
        return rows

    def decode(self, packed: np.ndarray, height: int, width: int) -> np.ndarray:
        """Packed latents -> float images ``[K, H, W, 3]`` in [0, 1]."""
        h, w = self._config.latent_size(height, width)
        latents = flux.unpack_latents(packed, h, w)
        latents = flux.vae_input(
            latents, self._config.vae_scaling_factor, self._config.vae_shift_factor
        )
        image = self._run_batched(flux.VAE_DECODER, {"latents": latents})
        return flux.postprocess(image)

    # -- text -------------------------------------------------------------------------------
    def encode_texts(self, texts: Sequence[str]) -> list[TextEmbedding]:
        """One embedding per text; unseen texts are encoded together, seen ones come from the
        cache."""
        found = {t: self._cache.get(t) for t in dict.fromkeys(texts)}
        todo = [t for t, e in found.items() if e is None]
        if todo:
            length = self._config.max_sequence_length
            t5_ids = _encode_tokens(self.t5_tokenizer, todo, length, self._pad_id(self._t5_spec))
            sequences = self._run_batched(
                flux.T5, {"input_ids": t5_ids, "attention_mask": np.ones_like(t5_ids)}
            )
            clip_ids = _encode_tokens(
                self.clip_tokenizer, todo, self._clip_spec.max_length, self._pad_id(self._clip_spec)
            )
            pooled = self._run_batched(flux.CLIP, {"input_ids": clip_ids})
            for i, text in enumerate(todo):
                emb = TextEmbedding(sequences[i], pooled[i])
                self._cache.put(text, emb)
                found[text] = emb
        return [found[t] for t in texts]  # type: ignore[misc]

    def clear_text_cache(self) -> None:
        """Forget every cached text embedding (the next prompt is encoded again)."""
        self._cache = _LruCache(self._cache.capacity)

    def _pad_id(self, spec: Any) -> int:
        if spec.pad_id is None:
            raise EngineError(f"tokenizer {spec.name} has no pad_id in the manifest")
        return spec.pad_id

    def _load_tokenizer(self, spec: Any) -> Any:
        """The engine's tokenizer with its preset's rules and the manifest's row width (the
        tiny test engines pad T5 to fewer than the preset's 512 tokens)."""
        from npc_rt.tokenizer import Tokenizer

        tokenizer = Tokenizer.from_preset(spec.preset, spec.file)
        if tokenizer.max_length == spec.max_length and tokenizer.pad_id == spec.pad_id:
            return tokenizer
        return Tokenizer.from_file(
            spec.file,
            max_length=spec.max_length,
            pad_id=spec.pad_id,
            padding="max_length",
            truncation=True,
            add_special_tokens=True,
        )

    # -- helpers ----------------------------------------------------------------------------
    def _run_batched(self, component: str, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Run ``component`` over the rows of ``inputs`` in chunks the batch profile accepts;
        return its first output, concatenated."""
        spec = self._engine.component(component)
        n = next(iter(inputs.values())).shape[0]
        step = self._batch_max(component)
        outs = [
            self._backend.run(component, {k: v[i : i + step] for k, v in inputs.items()})[
                spec.output_names[0]
            ]
            for i in range(0, n, step)
        ]
        return outs[0] if len(outs) == 1 else np.concatenate(outs)


def _default_randn() -> Randn:
    try:
        from npc_rt import randn
    except ImportError as exc:
        raise EngineError("npc_rt.randn (the torch-compatible generator) is not available") from exc
    return randn


def load_engine(
    path: str | Path,
    *,
    backend: str = "ort",
    providers: Sequence[str] | None = None,
    precision: str = "fp16",
    verify_hashes: bool = False,
    text_cache_size: int = 64,
    intra_op_threads: int = 0,
    resident: bool | None = None,
) -> Pipeline:
    """Open an engine directory and its sessions; every check runs here, before any sampling.

    ``backend``: ``"ort"`` (ONNX Runtime; ``providers`` picks its execution providers, default
    CUDA if present, else CPU; ``intra_op_threads`` its threads per session, 0 = one per core) or
    ``"trt"`` (native TensorRT plans built by ``npc-rt build`` at ``precision``).

    ``resident``: keep the latents on the device between steps (``npc_rt.resident``); None =
    when the backend computes on a GPU and the engine has a sampler step, True = required."""
    engine = open_engine(path, verify_hashes=verify_hashes)
    runner = _backend(engine, backend, providers, precision, intra_op_threads)
    if engine.family in ("sdxl", "sd3"):  # real-CFG families: pipelines_cfg.CfgPipeline
        from npc_rt.pipelines_cfg import load_cfg_engine

        return load_cfg_engine(engine, runner, text_cache_size=text_cache_size, resident=resident)
    if engine.family != flux.FAMILY:
        raise EngineError(f"no pipeline for family {engine.family!r}")
    pipeline = Pipeline(engine, runner, text_cache_size=text_cache_size, resident=resident)
    runner.load()
    # tokenizers too: a bad tokenizer file fails here, and the first prompt pays no load time
    pipeline.clip_tokenizer, pipeline.t5_tokenizer  # noqa: B018
    return pipeline


def _backend(
    engine: Engine,
    kind: str,
    providers: Sequence[str] | None,
    precision: str,
    intra_op_threads: int,
) -> Backend:
    if kind == "ort":
        from npc_rt.backends.ort import OrtBackend

        return OrtBackend(engine, providers, intra_op_threads=intra_op_threads)
    if kind == "trt":
        from npc_rt.backends.trt import TrtBackend

        return TrtBackend(engine, precision=precision)
    raise InvalidInputError(f"backend must be 'ort' or 'trt', got {kind!r}")


__all__ = ["Pipeline", "Samples", "TextEmbedding", "FluxScoringEncoder", "load_engine"]
