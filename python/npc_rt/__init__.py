"""npc_rt: a Rust-accelerated runtime for NPC (automated negative prompting).

This module is the public surface and nothing else: importing it loads no model and touches no
network.
"""

from __future__ import annotations

from npc_rt.engine import Engine, open_engine
from npc_rt.errors import (
    EngineError,
    InvalidInputError,
    JudgeError,
    JudgeUnavailableError,
    MalformedJudgeAnswerError,
    ManifestVersionError,
    NonFiniteError,
    NpcError,
    NpcIOError,
    ShapeError,
    TokenizerError,
)
from npc_rt.generator import GenerationParams, SizeConditioning, SkipLayerGuidance
from npc_rt.judges.base import Caption, Judges, Proposal, Verdict
from npc_rt.judges.factory import build_judges
from npc_rt.loop import Attempt, CorrectionResult, correct
from npc_rt.pipeline import Pipeline, load_engine
from npc_rt.prompt import (
    FALLBACK_NEGATIVES,
    PromptTerms,
    analyze_prompt,
    analyze_prompts,
    clean_candidates,
    top_up,
)
from npc_rt.rng import TorchCpuGenerator, randn
from npc_rt.scoring import (
    BatchScoreResult,
    RankedCandidate,
    Ranking,
    ScoreResult,
    mean_pool,
    rank_candidates,
    salient_scores,
    salient_scores_batch,
)
from npc_rt.tokenizer import (
    PRESETS,
    TokenBatch,
    Tokenizer,
    convert_clip_vocab,
    convert_sentencepiece,
)

__version__ = "0.1.0"

__all__ = [
    "GenerationParams",
    "SizeConditioning",
    "SkipLayerGuidance",
    "__version__",
    "NpcError",
    "InvalidInputError",
    "ShapeError",
    "NonFiniteError",
    "TokenizerError",
    "NpcIOError",
    "EngineError",
    "ManifestVersionError",
    "JudgeError",
    "JudgeUnavailableError",
    "MalformedJudgeAnswerError",
    "randn",
    "TorchCpuGenerator",
    "Tokenizer",
    "TokenBatch",
    "PRESETS",
    "convert_clip_vocab",
    "convert_sentencepiece",
    "Engine",
    "open_engine",
    "Pipeline",
    "load_engine",
    "correct",
    "CorrectionResult",
    "Attempt",
    "Judges",
    "Verdict",
    "Caption",
    "Proposal",
    "build_judges",
    "PromptTerms",
    "FALLBACK_NEGATIVES",
    "analyze_prompt",
    "analyze_prompts",
    "clean_candidates",
    "top_up",
    "mean_pool",
    "salient_scores",
    "salient_scores_batch",
    "rank_candidates",
    "ScoreResult",
    "BatchScoreResult",
    "Ranking",
    "RankedCandidate",
]
