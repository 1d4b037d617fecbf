"""Native TensorRT backend (satisfies ``backends.base.Backend``).

Imports ``tensorrt`` and ``cuda-python`` (``cuda.bindings``) lazily: this module imports on any
machine, and constructing a ``TrtBackend`` without them raises an ``EngineError`` that says what
to install. Plans come from the engine directory's plan cache (``trt_plans``), built for this GPU
and TensorRT version by ``npc-rt build``; a plan for another GPU or version is never loaded.

Device buffers are allocated once per (component, input shapes) and reused; inputs that stay
constant across steps can be ``place``d on the device once. With ``cuda_graphs=True`` a component
whose plan is static-shape is captured into a CUDA graph on its second call and replayed after.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from npc_rt.backends.trt_plans import (
    PlanCache,
    TrtTarget,
    optimization_profile,
    plan_cache_key,
)
from npc_rt.engine import Engine
from npc_rt.errors import EngineError

_INSTALL_HINT = "install the `tensorrt` and `cuda-python` packages on a machine with an NVIDIA GPU"


def _modules() -> tuple[Any, Any]:
    try:
        import tensorrt as trt
        from cuda.bindings import runtime as cudart
    except ImportError as exc:
        raise EngineError(
            f"the TensorRT backend needs TensorRT and CUDA: {_INSTALL_HINT} ({exc})"
        ) from exc
    return trt, cudart


def _check(result: Any, what: str) -> Any:
    """cuda-python returns ``(err, *values)``; raise on a non-success code."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise EngineError(f"CUDA call {what} failed with error {int(err)}")
    return values[0] if len(values) == 1 else tuple(values)


def current_target(device: int = 0) -> TrtTarget:
    """This process's TensorRT version and the GPU ``device`` (name, compute capability)."""
    trt, cudart = _modules()
    props = _check(cudart.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return TrtTarget(
        tensorrt_version=trt.__version__,
        gpu_name=name.strip("\x00 "),
        compute_capability=f"{props.major}.{props.minor}",
    )


@dataclass
class _Buffers:
    shapes: dict[str, tuple[int, ...]]
    device: dict[str, int] = field(default_factory=dict)
    host_out: dict[str, np.ndarray] = field(default_factory=dict)
    graph: Any = None
    calls: int = 0


class TrtBackend:
    def __init__(
        self,
        engine: Engine,
        *,
        precision: str = "fp16",
        device: int = 0,
        cuda_graphs: bool = False,
        static: bool = False,
    ) -> None:
        self._trt, self._cudart = _modules()
        self._engine = engine
        self._device = device
        self._precision = precision
        self._cuda_graphs = cuda_graphs
        self._static = static
        _check(self._cudart.cudaSetDevice(device), "cudaSetDevice")
        self._stream = _check(self._cudart.cudaStreamCreate(), "cudaStreamCreate")
        self._target = current_target(device)
        self._logger = self._trt.Logger(self._trt.Logger.WARNING)
        self._runtime = self._trt.Runtime(self._logger)
        self._engines: dict[str, Any] = {}
        self._contexts: dict[str, Any] = {}
        self._buffers: dict[str, _Buffers] = {}
        self._placed: list[int] = []

    @property
    def name(self) -> str:
        return f"tensorrt[{self._target.gpu_name}, {self._precision}]"

    def _plan_path(self, component: str):
        cache = PlanCache(self._engine.root)
        rebuild = f"`npc-rt build {self._engine.root} --precision {self._precision}`"
        if self._static:
            entry = cache.entry(component, static=True)
            if entry is None or entry.target != self._target or entry.precision != self._precision:
                raise EngineError(
                    f"no static {self._precision} TensorRT plan of {component} for "
                    f"{self._target}; run {rebuild} with --static"
                )
            return cache.lookup(component, entry.key, static=True)
        raw = self._engine.manifest["components"][component]
        key = plan_cache_key(
            self._engine.component(component).file.sha256,
            self._target,
            self._precision,
            optimization_profile(raw),
        )
        path = cache.lookup(component, key)
        if path is None:
            raise EngineError(
                f"no TensorRT plan of {component} for {self._target.gpu_name} "
                f"(sm {self._target.compute_capability}, TensorRT {self._target.tensorrt_version}, "
                f"{self._precision}) in {cache.root}; run {rebuild}"
            )
        return path

    def _context(self, component: str) -> Any:
        context = self._contexts.get(component)
        if context is not None:
            return context
        path = self._plan_path(component)
        engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise EngineError(
                f"TensorRT could not deserialize {path} (corrupt, or built by another version)"
            )
        context = engine.create_execution_context()
        self._engines[component] = engine
        self._contexts[component] = context
        return context

    def load(self, components: list[str] | None = None) -> None:
        for name in components if components is not None else list(self._engine.components):
            self._context(name)

    def place(self, array: np.ndarray) -> object:
        return np.ascontiguousarray(array)

    def _malloc(self, nbytes: int) -> int:
        return int(_check(self._cudart.cudaMalloc(max(nbytes, 1)), "cudaMalloc"))

    def _buffers_for(
        self, component: str, context: Any, feeds: Mapping[str, np.ndarray]
    ) -> _Buffers:
        shapes = {k: tuple(v.shape) for k, v in feeds.items()}
        buffers = self._buffers.get(component)
        if buffers is not None and buffers.shapes == shapes:
            return buffers
        if buffers is not None:
            self._free(buffers)
        buffers = _Buffers(shapes=shapes)
        for name, array in feeds.items():
            context.set_input_shape(name, array.shape)
            buffers.device[name] = self._malloc(array.nbytes)
            context.set_tensor_address(name, buffers.device[name])
        spec = self._engine.component(component)
        for out in spec.outputs:
            shape = tuple(context.get_tensor_shape(out.name))
            host = np.empty(
                shape, dtype=self._trt.nptype(self._engines[component].get_tensor_dtype(out.name))
            )
            buffers.host_out[out.name] = host
            buffers.device[out.name] = self._malloc(host.nbytes)
            context.set_tensor_address(out.name, buffers.device[out.name])
        self._buffers[component] = buffers
        return buffers

    def run(self, component: str, inputs: Mapping[str, object]) -> dict[str, np.ndarray]:
        spec = self._engine.component(component)
        dtypes = {t.name: t.dtype for t in spec.inputs}
        feeds = {k: np.ascontiguousarray(v, dtype=dtypes[k]) for k, v in inputs.items()}
        spec.check_inputs({k: v.shape for k, v in feeds.items()})
        context = self._context(component)
        buffers = self._buffers_for(component, context, feeds)
        cudart, stream = self._cudart, self._stream
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name, array in feeds.items():
            _check(
                cudart.cudaMemcpyAsync(
                    buffers.device[name], array.ctypes.data, array.nbytes, h2d, stream
                ),
                "cudaMemcpyAsync",
            )
        buffers.calls += 1
        if buffers.graph is not None:
            _check(cudart.cudaGraphLaunch(buffers.graph, stream), "cudaGraphLaunch")
        elif self._cuda_graphs and self._static and buffers.calls >= 2:
            # The first call ran eagerly (TensorRT may allocate then); capture from the second.
            _check(
                cudart.cudaStreamBeginCapture(
                    stream, cudart.cudaStreamCaptureMode.cudaStreamCaptureModeGlobal
                ),
                "cudaStreamBeginCapture",
            )
            context.execute_async_v3(stream)
            graph = _check(cudart.cudaStreamEndCapture(stream), "cudaStreamEndCapture")
            buffers.graph = _check(cudart.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
            _check(cudart.cudaGraphLaunch(buffers.graph, stream), "cudaGraphLaunch")
        elif not context.execute_async_v3(stream):
            raise EngineError(f"TensorRT execution of {component} failed")
        for name, host in buffers.host_out.items():
            _check(
                cudart.cudaMemcpyAsync(
                    host.ctypes.data, buffers.device[name], host.nbytes, d2h, stream
                ),
                "cudaMemcpyAsync",
            )
        _check(cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize")
        return {name: host.copy() for name, host in buffers.host_out.items()}

    def _free(self, buffers: _Buffers) -> None:
        for pointer in buffers.device.values():
            self._cudart.cudaFree(pointer)
        buffers.device.clear()

    def close(self) -> None:
        for buffers in self._buffers.values():
            self._free(buffers)
        self._buffers.clear()
        self._contexts.clear()
        self._engines.clear()


__all__ = ["TrtBackend", "current_target"]
