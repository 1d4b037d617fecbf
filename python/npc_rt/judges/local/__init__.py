"""The embedded local judge: an object detector plus GenEval-style checks, in-process, offline.

Roles: ``LocalVerifier``, ``LocalCaptioner``, ``LocalProposer`` (sharing one ``LocalScene``, so
the detector loads once), and ``CascadeVerifier`` (local first, a VLM only for what it accepts).
Importing this package loads no model and does not import OpenCV.
"""

from npc_rt.judges.local.captioner import LocalCaptioner
from npc_rt.judges.local.cascade import CascadeVerifier
from npc_rt.judges.local.checks import CheckConfig, CheckReport, CheckResult, ObservedObject
from npc_rt.judges.local.detector import (
    DarknetDetector,
    Detection,
    Detector,
    DetectorConfig,
    OnnxDetector,
)
from npc_rt.judges.local.proposer import LocalProposer
from npc_rt.judges.local.scene import LocalScene
from npc_rt.judges.local.verifier import LocalVerifier

__all__ = [
    "CascadeVerifier",
    "CheckConfig",
    "CheckReport",
    "CheckResult",
    "DarknetDetector",
    "Detection",
    "Detector",
    "DetectorConfig",
    "LocalCaptioner",
    "LocalProposer",
    "LocalScene",
    "LocalVerifier",
    "ObservedObject",
    "OnnxDetector",
]
