"""Native TensorRT backend (satisfies ``backends.base.ResidentBackend``).

Imports ``tensorrt`` and ``cuda-python`` (``cuda.bindings``) lazily: this module imports on any
machine, and constructing a ``TrtBackend`` without them raises an ``EngineError`` that says what
to install. Plans come from the engine directory's plan cache (``trt_plans``), built for this GPU
and TensorRT version by ``npc-rt build``; a plan for another GPU or version is never loaded.

Device buffers are allocated once per (component, input shapes) and reused: two alternating
output sets, so an output can feed the next call of the same component (the sampler step's
latents) without being overwritten, and staging buffers for inputs that come from the host.
``place`` uploads an input once (text embeddings, ids); ``run_resident`` chains outputs into
inputs on the device, which is how ``npc_rt.resident`` keeps the latents there for a whole
generation; ``run`` is ``run_resident`` plus one download. With ``cuda_graphs=True`` a static-shape
plan is captured into a CUDA graph on the second call at the same tensor addresses and replayed
after.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
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


class DeviceArray:
    """A tensor in device memory: base pointer, shape and numpy dtype.

    Arrays from ``TrtBackend.place`` own their memory (freed when the array is collected or the
    backend closes); arrays from ``run_resident`` are views of the backend's output buffers, valid
    until the second next ``run_resident`` of that component with the same input shapes.
    """

    __slots__ = ("ptr", "shape", "dtype", "__weakref__")

    def __init__(self, ptr: int, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.ptr = int(ptr)
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def __repr__(self) -> str:
        return f"DeviceArray(0x{self.ptr:x}, shape={self.shape}, dtype={self.dtype})"


BINDINGS_PER_COMPONENT = 4
"""Input-shape sets kept per component. A FLUX generation with negatives on the first N steps uses
two for the transformer and three for the sampler step (before, at and after the switch)."""
GRAPHS_PER_BINDING = 4
"""CUDA graphs kept per binding, one per set of tensor addresses (the alternating output sets
and each generation's ``place``d inputs give new address sets)."""


@dataclass
class _Binding:
    """Device memory of one component at one set of input shapes (the key it is stored under)."""

    staging: dict[str, int] = field(default_factory=dict)  # inputs that arrive from the host
    outputs: list[dict[str, DeviceArray]] = field(default_factory=list)  # two alternating sets
    turn: int = 0
    graphs: OrderedDict[tuple[int, ...], Any] = field(default_factory=OrderedDict)
    calls: dict[tuple[int, ...], int] = field(default_factory=dict)


class TrtBackend:
    """Runs an engine's components from TensorRT plans (``backends.base.ResidentBackend``)."""

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
        self._context_shapes: dict[str, dict[str, tuple[int, ...]]] = {}
        self._bindings: dict[str, OrderedDict[tuple, _Binding]] = {}
        self._owned: set[int] = set()
        self._closed = False

    @property
    def name(self) -> str:
        return f"tensorrt[{self._target.gpu_name}, {self._precision}]"

    @property
    def prefers_resident(self) -> bool:
        return True

    def _plan_path(self, component: str):
        cache = PlanCache(self._engine.root)
        rebuild = f"`npc-rt build {self._engine.root} --precision {self._precision}`"
        if self._static:
            entry = cache.entry(component, self._precision, static=True)
            if entry is None or entry.target != self._target:
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

    # -- memory -----------------------------------------------------------------------------
    def _malloc(self, nbytes: int) -> int:
        return int(_check(self._cudart.cudaMalloc(max(nbytes, 1)), "cudaMalloc"))

    def _free(self, pointer: int) -> None:
        if not self._closed:
            self._cudart.cudaFree(pointer)

    def _release_owned(self, pointer: int) -> None:
        if pointer in self._owned:
            self._owned.discard(pointer)
            self._free(pointer)

    def _upload(self, pointer: int, array: np.ndarray) -> None:
        kind = self._cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        _check(
            self._cudart.cudaMemcpyAsync(
                pointer, array.ctypes.data, array.nbytes, kind, self._stream
            ),
            "cudaMemcpyAsync (host to device)",
        )

    def place(self, array: np.ndarray) -> object:
        """Upload ``array`` once; the returned ``DeviceArray`` owns its memory."""
        host = np.ascontiguousarray(array)
        pointer = self._malloc(host.nbytes)
        self._owned.add(pointer)
        self._upload(pointer, host)
        placed = DeviceArray(pointer, host.shape, host.dtype)
        weakref.finalize(placed, self._release_owned, pointer)
        return placed

    def to_host(self, value: object) -> np.ndarray:
        if not isinstance(value, DeviceArray):
            return np.asarray(value)
        return self._download([value])[0]

    def _download(self, values: list[DeviceArray]) -> list[np.ndarray]:
        kind = self._cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        hosts = []
        for value in values:
            host = np.empty(value.shape, dtype=value.dtype)
            _check(
                self._cudart.cudaMemcpyAsync(
                    host.ctypes.data, value.ptr, host.nbytes, kind, self._stream
                ),
                "cudaMemcpyAsync (device to host)",
            )
            hosts.append(host)
        _check(self._cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        return hosts

    # -- bindings ---------------------------------------------------------------------------
    def _set_shapes(self, component: str, context: Any, shapes: dict[str, tuple[int, ...]]) -> None:
        """The context holds one set of input shapes; set them when this call's differ."""
        if self._context_shapes.get(component) == shapes:
            return
        for name, shape in shapes.items():
            if not context.set_input_shape(name, shape):
                raise EngineError(
                    f"TensorRT rejected shape {shape} for {component}.{name} "
                    "(outside the plan's optimization profile)"
                )
        self._context_shapes[component] = dict(shapes)

    def _binding_for(
        self, component: str, context: Any, shapes: dict[str, tuple[int, ...]]
    ) -> _Binding:
        key = tuple(sorted(shapes.items()))
        bindings = self._bindings.setdefault(component, OrderedDict())
        binding = bindings.get(key)
        if binding is not None:
            bindings.move_to_end(key)
            return binding
        self._set_shapes(component, context, shapes)
        binding = _Binding()
        engine = self._engines[component]
        for _ in range(2):
            outputs = {}
            for out in self._engine.component(component).outputs:
                shape = tuple(int(d) for d in context.get_tensor_shape(out.name))
                dtype = np.dtype(self._trt.nptype(engine.get_tensor_dtype(out.name)))
                array = DeviceArray(0, shape, dtype)
                array.ptr = self._malloc(array.nbytes)
                outputs[out.name] = array
            binding.outputs.append(outputs)
        bindings[key] = binding
        while len(bindings) > BINDINGS_PER_COMPONENT:
            _, old = bindings.popitem(last=False)
            self._free_binding(old)
        return binding

    def _free_binding(self, binding: _Binding) -> None:
        for graph in binding.graphs.values():
            self._cudart.cudaGraphExecDestroy(graph)
        binding.graphs.clear()
        for pointer in binding.staging.values():
            self._free(pointer)
        for outputs in binding.outputs:
            for array in outputs.values():
                self._free(array.ptr)
        binding.staging.clear()
        binding.outputs.clear()

    # -- running ----------------------------------------------------------------------------
    def run_resident(self, component: str, inputs: Mapping[str, object]) -> dict[str, object]:
        """Run ``component``; inputs are host arrays or ``DeviceArray``s, outputs stay on the
        device (``DeviceArray`` views of this component's alternating output buffers)."""
        spec = self._engine.component(component)
        dtypes = {t.name: np.dtype(t.dtype) for t in spec.inputs}
        host: dict[str, np.ndarray] = {}
        device: dict[str, DeviceArray] = {}
        for name, value in inputs.items():
            if name not in dtypes:
                raise EngineError(f"{component} has no input {name!r}")
            if isinstance(value, DeviceArray):
                if value.dtype != dtypes[name]:
                    raise EngineError(
                        f"{component}.{name} wants {dtypes[name]}, got a device {value.dtype}"
                    )
                device[name] = value
            else:
                host[name] = np.ascontiguousarray(value, dtype=dtypes[name])
        shapes = {k: v.shape for k, v in {**host, **device}.items()}
        spec.check_inputs(shapes)
        context = self._context(component)
        binding = self._binding_for(component, context, shapes)
        self._set_shapes(component, context, shapes)
        addresses = {name: array.ptr for name, array in device.items()}
        for name, array in host.items():
            if name not in binding.staging:
                binding.staging[name] = self._malloc(array.nbytes)
            self._upload(binding.staging[name], array)
            addresses[name] = binding.staging[name]
        outputs = binding.outputs[binding.turn]
        binding.turn ^= 1
        addresses.update({name: array.ptr for name, array in outputs.items()})
        for name, pointer in addresses.items():
            context.set_tensor_address(name, pointer)
        self._execute(component, context, binding, tuple(sorted(addresses.items())))
        return dict(outputs)

    def _execute(self, component: str, context: Any, binding: _Binding, key: tuple) -> None:
        cudart, stream = self._cudart, self._stream
        graph = binding.graphs.get(key)
        if graph is not None:
            binding.graphs.move_to_end(key)
            _check(cudart.cudaGraphLaunch(graph, stream), "cudaGraphLaunch")
            return
        calls = binding.calls[key] = binding.calls.get(key, 0) + 1
        if not (self._cuda_graphs and self._static and calls >= 2):
            if not context.execute_async_v3(int(stream)):
                raise EngineError(f"TensorRT execution of {component} failed")
            return
        # The first call at these addresses ran eagerly (TensorRT may allocate then); capture the
        # second and replay it from then on.
        mode = cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        _check(cudart.cudaStreamBeginCapture(stream, mode), "cudaStreamBeginCapture")
        ok = context.execute_async_v3(int(stream))
        captured = _check(cudart.cudaStreamEndCapture(stream), "cudaStreamEndCapture")
        if not ok:
            raise EngineError(f"TensorRT execution of {component} failed during graph capture")
        graph = _check(cudart.cudaGraphInstantiate(captured, 0), "cudaGraphInstantiate")
        cudart.cudaGraphDestroy(captured)
        binding.graphs[key] = graph
        binding.calls.pop(key, None)
        while len(binding.graphs) > GRAPHS_PER_BINDING:
            _, old = binding.graphs.popitem(last=False)
            cudart.cudaGraphExecDestroy(old)
        _check(cudart.cudaGraphLaunch(graph, stream), "cudaGraphLaunch")

    def run(self, component: str, inputs: Mapping[str, object]) -> dict[str, np.ndarray]:
        outputs = self.run_resident(component, inputs)
        names = list(outputs)
        hosts = self._download([outputs[n] for n in names])  # type: ignore[misc]
        return dict(zip(names, hosts, strict=True))

    def close(self) -> None:
        if self._closed:
            return
        _check(self._cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        for bindings in self._bindings.values():
            for binding in bindings.values():
                self._free_binding(binding)
        self._bindings.clear()
        for pointer in list(self._owned):
            self._free(pointer)
        self._owned.clear()
        self._contexts.clear()
        self._context_shapes.clear()
        self._engines.clear()
        self._cudart.cudaStreamDestroy(self._stream)
        self._closed = True


__all__ = ["DeviceArray", "TrtBackend", "current_target"]
