"""The npc_rt exception tree.

Everything npc_rt raises on purpose is an ``NpcError``. Children that describe bad caller input
also inherit from ``ValueError`` so generic handlers keep working. The Rust core's error variants map
one to one onto the first five classes (see ``rust/npc-py/src/errors.rs``).
"""

from __future__ import annotations


class NpcError(Exception):
    """Root of every error npc_rt raises deliberately."""


class InvalidInputError(NpcError, ValueError):
    """A caller-supplied value is unusable: empty prompt, empty candidate list, bad option."""


class ShapeError(InvalidInputError):
    """Arrays or sizes that do not agree (dimensions, height/width outside the engine profile)."""


class NonFiniteError(InvalidInputError):
    """NaN or infinity where finite numbers are required."""


class TokenizerError(NpcError):
    """A tokenizer file or vocabulary that cannot be loaded or used."""


class NpcIOError(NpcError, OSError):
    """A file that cannot be read or written."""


class EngineError(NpcError):
    """A missing or corrupt engine directory, manifest or engine file, or a backend failure."""


class ManifestVersionError(EngineError):
    """An engine directory written by an incompatible format version."""


class JudgeError(NpcError):
    """A judge (verifier, captioner, proposer) that could not produce a usable answer."""


class JudgeUnavailableError(JudgeError):
    """The judge's server is down, refused the connection, or timed out after all retries."""


class MalformedJudgeAnswerError(JudgeError):
    """The judge answered, but not with the JSON its role requires (after all retries)."""


__all__ = [
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
]
