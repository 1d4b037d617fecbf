"""ONNX Runtime backend: one InferenceSession per component, created once and shared.

Providers: the CPU execution provider by default; CUDA when onnxruntime-gpu is installed and
sees a GPU; TensorRT when asked for (its engines are built on the first run, which takes minutes,
so it is never chosen silently). On a device provider, IO binding keeps constant inputs
(``place``) and outputs on the device; only the results the loop reads come back to the host.

Sessions live in a process-wide cache keyed by the ONNX file (path, size, mtime), the providers
and the options, so opening the same engine directory twice (or one pipeline per request) loads
each model once.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from npc_rt.engine import ComponentSpec, Engine
from npc_rt.errors import EngineError

PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
}
_DEVICE_OF_PROVIDER = {"CUDAExecutionProvider": "cuda", "TensorrtExecutionProvider": "cuda"}

_SESSIONS: dict[tuple[Any, ...], Any] = {}
_SESSIONS_LOCK = threading.Lock()


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise EngineError("onnxruntime is not installed (pip install onnxruntime)") from exc
    return onnxruntime


def resolve_providers(providers: Sequence[str] | None = None) -> tuple[str, ...]:
    """Full provider names in priority order, CPU always last as the fallback.

    ``None``: CUDA when this onnxruntime build has it, else CPU. Aliases: cpu, cuda, tensorrt.
    """
    available = set(_ort().get_available_providers())
    if providers is None:
        chosen = ["CUDAExecutionProvider"] if "CUDAExecutionProvider" in available else []
    else:
        chosen = [PROVIDER_ALIASES.get(p.lower(), p) for p in providers]
        missing = [p for p in chosen if p not in available]
        if missing:
            raise EngineError(
                f"execution providers {missing} are not available in this onnxruntime "
                f"(available: {sorted(available)}; CUDA/TensorRT need onnxruntime-gpu)"
            )
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return tuple(dict.fromkeys(chosen))


def clear_session_cache() -> None:
    """Drop every cached session (frees their memory once no backend holds them)."""
    with _SESSIONS_LOCK:
        _SESSIONS.clear()


class OrtBackend:
    """Runs one engine's components through ONNX Runtime (satisfies ``backends.base.Backend``)."""

    def __init__(
        self,
        engine: Engine,
        providers: Sequence[str] | None = None,
        *,
        use_io_binding: bool | None = None,
        intra_op_threads: int = 0,
    ) -> None:
        self._engine = engine
        self._providers = resolve_providers(providers)
        self._device = _DEVICE_OF_PROVIDER.get(self._providers[0], "cpu")
        # IO binding pays off only when inputs would otherwise be copied to a device every call;
        # it can be forced on the CPU (tests exercise the same code path there).
        self._io_binding = self._device != "cpu" if use_io_binding is None else use_io_binding
        self._intra_op_threads = intra_op_threads
        self._sessions: dict[str, Any] = {}

    @property
    def name(self) -> str:
        return f"onnxruntime[{','.join(self._providers)}]"

    @property
    def providers(self) -> tuple[str, ...]:
        return self._providers

    def load(self, components: Sequence[str] | None = None) -> None:
        """Create (or fetch from the cache) the sessions now, so a corrupt file fails here."""
        for name in components if components is not None else list(self._engine.components):
            self._session(name)

    def _session(self, component: str) -> Any:
        session = self._sessions.get(component)
        if session is not None:
            return session
        spec = self._engine.component(component)
        path = spec.file.path
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns, self._providers, self._intra_op_threads)
        with _SESSIONS_LOCK:
            session = _SESSIONS.get(key)
            if session is None:
                session = self._create_session(spec, path)
                _SESSIONS[key] = session
        self._sessions[component] = session
        return session

    def _create_session(self, spec: ComponentSpec, path: Path) -> Any:
        ort = _ort()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if self._intra_op_threads:
            options.intra_op_num_threads = self._intra_op_threads
        try:
            session = ort.InferenceSession(str(path), options, providers=list(self._providers))
        except Exception as exc:  # onnxruntime raises its own exception types
            raise EngineError(f"cannot load {spec.name} from {path}: {exc}") from exc
        graph_inputs = {i.name for i in session.get_inputs()}
        graph_outputs = {o.name for o in session.get_outputs()}
        if graph_inputs != set(spec.input_names) or not set(spec.output_names) <= graph_outputs:
            raise EngineError(
                f"{path}: graph IO {sorted(graph_inputs)} -> {sorted(graph_outputs)} does not match "
                f"the manifest {list(spec.input_names)} -> {list(spec.output_names)}"
            )
        return session

    def place(self, array: np.ndarray) -> object:
        if not self._io_binding:
            return array
        return _ort().OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), self._device, 0)

    def run(self, component: str, inputs: Mapping[str, object]) -> dict[str, np.ndarray]:
        return self._execute(component, inputs, keep_on_device=False)

    def _execute(
        self, component: str, inputs: Mapping[str, object], *, keep_on_device: bool
    ) -> dict[str, Any]:
        """One session run: shapes checked against the manifest first, onnxruntime's errors as
        ``EngineError``. Outputs come back as host arrays, or as the provider's ``OrtValue``s
        with ``keep_on_device``."""
        spec = self._engine.component(component)
        ort = _ort()
        shapes = {
            k: tuple(v.shape()) if isinstance(v, ort.OrtValue) else np.shape(v)
            for k, v in inputs.items()
        }
        spec.check_inputs(shapes)
        session = self._session(component)
        dtypes = {t.name: t.dtype for t in spec.inputs}
        try:
            if keep_on_device:
                values = self._bind(session, spec, inputs, dtypes).get_outputs()
            elif self._io_binding:
                values = self._bind(session, spec, inputs, dtypes).copy_outputs_to_cpu()
            else:
                feeds = {k: np.ascontiguousarray(v, dtype=dtypes[k]) for k, v in inputs.items()}
                values = session.run(list(spec.output_names), feeds)
        except EngineError:
            raise
        except Exception as exc:
            raise EngineError(f"{component} failed in onnxruntime: {exc}") from exc
        return dict(zip(spec.output_names, values, strict=True))

    def _bind(
        self, session: Any, spec: ComponentSpec, inputs: Mapping[str, object], dtypes: dict
    ) -> Any:
        ort = _ort()
        binding = session.io_binding()
        for name, value in inputs.items():
            if isinstance(value, ort.OrtValue):
                binding.bind_ortvalue_input(name, value)
            else:
                binding.bind_cpu_input(name, np.ascontiguousarray(value, dtype=dtypes[name]))
        for name in spec.output_names:
            binding.bind_output(name, self._device, 0)
        session.run_with_iobinding(binding)
        return binding

    # -- ResidentBackend --------------------------------------------------------------------
    @property
    def prefers_resident(self) -> bool:
        """On a device provider: outputs then stay in device memory between calls."""
        return self._device != "cpu"

    def run_resident(self, component: str, inputs: Mapping[str, object]) -> dict[str, object]:
        """Like ``run``, with outputs left where the provider computed them (``OrtValue``s; each
        call allocates fresh ones, so earlier outputs stay valid as long as they are held)."""
        return self._execute(component, inputs, keep_on_device=True)

    def to_host(self, value: object) -> np.ndarray:
        if isinstance(value, _ort().OrtValue):
            return value.numpy()
        return np.asarray(value)

    def close(self) -> None:
        """Forget this backend's sessions (the process cache keeps them for other users)."""
        self._sessions.clear()


__all__ = ["OrtBackend", "resolve_providers", "clear_session_cache", "PROVIDER_ALIASES"]
