"""``LocalProposer``: rules that turn what the local judge saw into negative prompts.

Order (contradictions first, as the method asks):

1. each failed check's observed phrase, from the verdict's ``details["checks"]``: a wrong count
   gives the detected count ("three dogs"), an excluded object present its name ("dog", or the
   count found when some are allowed), a wrong colour "<detected colour> <object>", a wrong
   relation "<a> <detected relation> <b>", a wrong region "<object> in the <detected region>", a
   wrong size "small <object>" / "large <object>";
2. each detected class the prompt does not ask for, by name ("cat"), highest confidence first,
   from the caption's ``details["objects"]`` (or the verdict's detections);
3. optionally, the candidates of another proposer (e.g. a small LLM served on loopback through
   ``OpenAIProposer``); its failure is recorded in ``raw`` and does not fail this proposer;
4. the method's fallback list (``npc_rt.prompt.top_up``) until there are K.

Everything is cleaned by the core's rules (``npc_rt.prompt.clean_candidates``) before topping up.
Verdicts and captions from other judges work too: without the local details, the expectations are
read from the prompt and the classes from the caption's details, if any.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from npc_rt.errors import InvalidInputError, JudgeError
from npc_rt.judges.base import Caption, Proposal, Proposer, Verdict
from npc_rt.judges.local.expectations import spec_from_prompt
from npc_rt.prompt import clean_candidates, top_up


class LocalProposer:
    def __init__(self, llm: Proposer | None = None, *, name: str = "local") -> None:
        self.llm = llm
        self.name = name if llm is None else f"{name}+{getattr(llm, 'name', type(llm).__name__)}"

    def __repr__(self) -> str:
        return f"LocalProposer({self.name!r})"

    def propose(self, prompt: str, caption: Caption, verdict: Verdict, k: int) -> Proposal:
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidInputError("prompt must be a non-empty string")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidInputError(f"k must be a positive integer, got {k!r}")
        rules = rule_candidates(prompt, caption, verdict)
        notes: dict[str, Any] = {"rules": rules}
        phrases = list(rules)
        if self.llm is not None:
            try:
                extra = self.llm.propose(prompt, caption, verdict, k)
            except JudgeError as exc:
                notes["llm_error"] = f"{type(exc).__name__}: {exc}"
            else:
                notes["llm"] = list(extra.candidates)
                if extra.error:
                    notes["llm_error"] = extra.error
                phrases.extend(extra.candidates)
        cleaned = clean_candidates(phrases, k)
        candidates = top_up(cleaned, k)
        notes["topped_up"] = candidates[len(cleaned) :]
        return Proposal(candidates=tuple(candidates), judge=self.name, raw=json.dumps(notes))


def rule_candidates(prompt: str, caption: Caption, verdict: Verdict) -> list[str]:
    """Steps 1 and 2 of the module docstring, in order, without duplicates."""
    out: list[str] = []
    for check in _checks(verdict.details):
        if not check.get("passed", True) and check.get("observed"):
            out.append(str(check["observed"]))
    for name in unrequested_classes(prompt, caption, verdict):
        out.append(name)
    return list(dict.fromkeys(out))


def unrequested_classes(prompt: str, caption: Caption, verdict: Verdict) -> list[str]:
    """Detected classes the expectations do not name, by descending confidence."""
    expected = verdict.details.get("expectations") if isinstance(verdict.details, Mapping) else None
    if isinstance(expected, Mapping):
        named = {
            str(entry.get("class"))
            for key in ("include", "exclude")
            for entry in expected.get(key, ()) or ()
            if isinstance(entry, Mapping)
        }
    else:
        spec = spec_from_prompt(prompt)
        named = {entry.name for entry in (*spec.include, *spec.exclude)}
    rows = _objects(caption.details) or _objects(verdict.details, key="detections")
    rows = sorted(rows, key=lambda row: -float(row.get("score", 0.0)))
    return list(dict.fromkeys(str(row["class"]) for row in rows if row.get("class") not in named))


def _checks(details: Any) -> Iterable[Mapping[str, Any]]:
    checks = details.get("checks") if isinstance(details, Mapping) else None
    if not isinstance(checks, Sequence):
        return ()
    return [check for check in checks if isinstance(check, Mapping)]


def _objects(details: Any, key: str = "objects") -> list[Mapping[str, Any]]:
    rows = details.get(key) if isinstance(details, Mapping) else None
    if not isinstance(rows, Sequence):
        return []
    return [row for row in rows if isinstance(row, Mapping) and isinstance(row.get("class"), str)]
