"""Backends that run an engine's components: the Protocol and the ONNX Runtime implementation.

Importing this package imports no runtime library; ``OrtBackend`` imports onnxruntime when used.
"""

from __future__ import annotations

from npc_rt.backends.base import Backend
from npc_rt.backends.ort import OrtBackend, clear_session_cache, resolve_providers

__all__ = ["Backend", "OrtBackend", "clear_session_cache", "resolve_providers"]
