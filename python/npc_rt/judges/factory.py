"""Building a ``Judges`` set by kind name, for the CLI and for services configured by strings.

Each kind maps to a builder ``(**options) -> Judges`` named as ``"module:function"`` so that
looking up a kind imports nothing until it is built (the OpenAI client, the detector, ...). Options
whose value is ``None`` are dropped before the builder sees them, so a CLI can pass every flag it
has and let defaults apply.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from npc_rt.errors import InvalidInputError
from npc_rt.judges.base import Judges

Builder = Callable[..., Judges]

_BUILDERS: dict[str, str | Builder] = {
    "openai": "npc_rt.judges.factory:build_openai_judges",
    "local": "npc_rt.judges.local.build:build_local_judges",
    "cascade": "npc_rt.judges.local.build:build_cascade_judges",
}


def judge_kinds() -> tuple[str, ...]:
    return tuple(sorted(_BUILDERS))


def register_judge_kind(name: str, builder: str | Builder) -> None:
    """Add (or replace) a kind: a callable or a ``"module:function"`` path to one."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError("judge kind name must be a non-empty string")
    _BUILDERS[name] = builder


def build_judges(kind: str, **options: Any) -> Judges:
    if kind not in _BUILDERS:
        raise InvalidInputError(
            f"unknown judge kind {kind!r}; known kinds: {', '.join(judge_kinds())}"
        )
    builder = _BUILDERS[kind]
    if isinstance(builder, str):
        module_name, _, func_name = builder.partition(":")
        builder = getattr(importlib.import_module(module_name), func_name)
    return builder(**{key: value for key, value in options.items() if value is not None})


_ROLES = ("verifier", "captioner", "proposer")


def build_openai_judges(
    *,
    model: str | None = None,
    verifier_model: str | None = None,
    captioner_model: str | None = None,
    proposer_model: str | None = None,
    **options: Any,
) -> Judges:
    """Three OpenAI-compatible roles. Shared settings (``base_url``, ``api_key_env``, ``timeout``,
    ``retries``, ``concurrency``, ``image_format``, and any other ``RoleConfig`` field) apply to
    every role; ``<role>_<setting>`` (e.g. ``proposer_base_url``) overrides one role. ``model``
    is the default for roles without their own ``<role>_model``."""
    from dataclasses import fields

    from npc_rt.judges.openai_compat import (
        OpenAICaptioner,
        OpenAIProposer,
        OpenAIVerifier,
        RoleConfig,
    )

    known = {f.name for f in fields(RoleConfig)} - {"model"}
    role_models = {
        "verifier": verifier_model,
        "captioner": captioner_model,
        "proposer": proposer_model,
    }
    shared: dict[str, Any] = {}
    per_role: dict[str, dict[str, Any]] = {role: {} for role in _ROLES}
    for key, value in options.items():
        role, _, setting = key.partition("_")
        if role in per_role and setting in known:
            per_role[role][setting] = value
        elif key in known:
            shared[key] = value
        else:
            raise InvalidInputError(f"unknown option {key!r} for the openai judges")
    configs = {}
    for role in _ROLES:
        role_model = role_models[role] or model
        if not role_model:
            raise InvalidInputError(
                f"the openai judges need a model for the {role}: pass model= or {role}_model="
            )
        configs[role] = RoleConfig(model=role_model, **{**shared, **per_role[role]})
    return Judges(
        verifier=OpenAIVerifier(configs["verifier"]),
        captioner=OpenAICaptioner(configs["captioner"]),
        proposer=OpenAIProposer(configs["proposer"]),
    )
