"""The evaluation harness: alignment accuracy with and without NPC on GenEval-format prompt sets."""

from npc_rt.evaluation.harness import EvalPlan, load_records, run_eval, seeds_for
from npc_rt.evaluation.report import write_report
from npc_rt.evaluation.samples import (
    BaselineSampler,
    CorrectionSampler,
    EvalPrompt,
    RejudgedSampler,
    SampleOutcome,
    Sampler,
)
from npc_rt.evaluation.summary import summarize

__all__ = [
    "EvalPlan",
    "EvalPrompt",
    "Sampler",
    "SampleOutcome",
    "BaselineSampler",
    "CorrectionSampler",
    "RejudgedSampler",
    "run_eval",
    "load_records",
    "seeds_for",
    "summarize",
    "write_report",
]
