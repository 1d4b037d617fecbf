"""Judges over OpenAI-compatible chat APIs (OpenAI, vLLM, SGLang, llama.cpp-style servers).

One ``ChatClient`` per role holds that role's server, model, timeout, retry policy and concurrency
limit. Retries are ours (the ``openai`` client's own are switched off) so that every attempt, its
outcome and its wait are recorded, ``Retry-After`` is honoured, and a malformed answer is retried
like a transport failure. When the retries run out the role answers *unknown* with the error
recorded; it never raises for a judge failure and never guesses a pass or a fail.

The API key is read from a named environment variable when the client is built. It is kept out of
``repr``, logs, records and error messages (any text that could echo it is scrubbed).
"""

from __future__ import annotations

import base64
import email.utils
import io
import json
import logging
import os
import random
import string
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Generic, TypeVar

import numpy as np

from npc_rt.errors import InvalidInputError, MalformedJudgeAnswerError
from npc_rt.judges.base import UNKNOWN, Caption, Proposal, Verdict
from npc_rt.judges.parsing import parse_candidates, parse_caption, parse_verdict

log = logging.getLogger(__name__)

T = TypeVar("T")

IMAGE_FORMATS = ("png", "jpeg")
TOKEN_LIMIT_FIELDS = ("max_tokens", "max_completion_tokens")
_NO_KEY = "not-needed"  # local servers accept any bearer token; the client insists on one


@dataclass(frozen=True)
class RoleConfig:
    """How to reach one judge role. ``api_key_env`` names the variable holding the key (``None`` or
    ``""`` for servers that need none); the key itself is never stored here."""

    model: str
    base_url: str = "https://api.openai.com/v1"
    api_key_env: str | None = "OPENAI_API_KEY"
    timeout: float = 60.0
    retries: int = 3
    concurrency: int = 8
    backoff_base: float = 0.5
    backoff_max: float = 20.0
    retry_after_max: float = 120.0
    image_format: str = "png"
    jpeg_quality: int = 90
    temperature: float | None = 0.0  # None: not sent (models that only take their default)
    max_tokens: int = 512
    token_limit_field: str = "max_tokens"  # or "max_completion_tokens" (OpenAI reasoning models)

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise InvalidInputError("judge model name must be a non-empty string")
        if not isinstance(self.base_url, str) or not self.base_url.startswith(
            ("http://", "https://")
        ):
            raise InvalidInputError(
                f"judge base URL must start with http:// or https://, got {self.base_url!r}"
            )
        if self.timeout <= 0:
            raise InvalidInputError(f"judge timeout must be > 0 seconds, got {self.timeout}")
        if self.retries < 0:
            raise InvalidInputError(f"judge retries must be >= 0, got {self.retries}")
        if self.concurrency < 1:
            raise InvalidInputError(f"judge concurrency must be >= 1, got {self.concurrency}")
        if self.backoff_base < 0 or self.backoff_max < 0 or self.retry_after_max < 0:
            raise InvalidInputError("judge backoff times must be >= 0")
        if self.image_format not in IMAGE_FORMATS:
            raise InvalidInputError(
                f"judge image format must be one of {IMAGE_FORMATS}, got {self.image_format!r}"
            )
        if not 1 <= self.jpeg_quality <= 100:
            raise InvalidInputError(f"jpeg quality must be in 1..100, got {self.jpeg_quality}")
        if self.token_limit_field not in TOKEN_LIMIT_FIELDS:
            raise InvalidInputError(
                f"token_limit_field must be one of {TOKEN_LIMIT_FIELDS}, got {self.token_limit_field!r}"
            )
        if self.max_tokens < 1:
            raise InvalidInputError(f"judge max_tokens must be >= 1, got {self.max_tokens}")

    def describe(self) -> dict[str, Any]:
        """What a run record may show about this role (no secret: only the variable's name)."""
        return {
            "model": self.model,
            "base_url": self.base_url,
            "api_key_env": self.api_key_env,
            "timeout": self.timeout,
            "retries": self.retries,
            "concurrency": self.concurrency,
            "image_format": self.image_format,
        }


@dataclass(frozen=True)
class ChatOutcome(Generic[T]):
    """The parsed value (``None`` when every attempt failed), the last raw answer and a log of
    attempts: ``{"attempt", "outcome", "error", "seconds", "waited"}``."""

    value: T | None
    raw: str | None
    attempts: tuple[Mapping[str, Any], ...]
    error: str | None
    seconds: float


class ChatClient:
    """One role's connection: retries, backoff, ``Retry-After``, a concurrency limit."""

    def __init__(
        self,
        config: RoleConfig,
        *,
        role: str,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import openai  # lazy: importing npc_rt must stay cheap and offline

        self.config = config
        self.role = role
        self._secret = _read_api_key(config.api_key_env)
        self._sleep = sleep
        self._slots = threading.BoundedSemaphore(config.concurrency)
        self._openai = openai
        # Reasoning models refuse `temperature` and `max_tokens`: both are configurable.
        self._sampling: dict[str, Any] = {config.token_limit_field: config.max_tokens}
        if config.temperature is not None:
            self._sampling["temperature"] = config.temperature
        self._client = openai.OpenAI(
            api_key=self._secret or _NO_KEY,
            base_url=config.base_url,
            timeout=config.timeout,
            max_retries=0,
        )

    def __repr__(self) -> str:
        return f"ChatClient(role={self.role!r}, model={self.config.model!r}, base_url={self.config.base_url!r})"

    def close(self) -> None:
        self._client.close()

    def scrub(self, text: str) -> str:
        """``text`` with the API key (if any) replaced: server errors may echo request headers."""
        if self._secret and self._secret in text:
            text = text.replace(self._secret, "***")
        return text

    def complete(
        self, messages: Sequence[Mapping[str, Any]], parse: Callable[[str], T]
    ) -> ChatOutcome[T]:
        openai = self._openai
        attempts: list[dict[str, Any]] = []
        raw: str | None = None
        started = time.perf_counter()
        total = self.config.retries + 1
        for attempt in range(total):
            t0 = time.perf_counter()
            delay: float | None = None
            retryable = True
            try:
                with self._slots:
                    response = self._client.chat.completions.create(
                        model=self.config.model,
                        messages=list(messages),  # type: ignore[arg-type]
                        **self._sampling,
                    )
                raw = _message_text(response)
                value = parse(raw)
            except MalformedJudgeAnswerError as exc:
                outcome, error = "malformed", str(exc)
            except openai.RateLimitError as exc:
                outcome, error = "rate_limited", _status_error(exc)
                delay = _retry_after(exc.response.headers)
            except openai.APITimeoutError:
                outcome, error = "timeout", f"no answer within {self.config.timeout:g} s"
            except openai.APIConnectionError as exc:
                outcome, error = (
                    "connection",
                    f"connection failed: {type(exc.__cause__ or exc).__name__}",
                )
            except openai.APIStatusError as exc:
                outcome, error = f"http_{exc.status_code}", _status_error(exc)
                retryable = exc.status_code >= 500 or exc.status_code in (408, 409)
            except (openai.OpenAIError, ValueError, OSError) as exc:
                # e.g. a 200 whose body is not JSON (the client's decoder raises ValueError)
                outcome, error = "bad_response", f"{type(exc).__name__}: {exc}"[:300]
            else:
                attempts.append(_attempt(attempt, "ok", None, time.perf_counter() - t0, 0.0))
                return ChatOutcome(
                    value=value,
                    raw=self.scrub(raw),
                    attempts=tuple(attempts),
                    error=None,
                    seconds=time.perf_counter() - started,
                )
            error = self.scrub(error)
            last = attempt == total - 1 or not retryable
            wait = 0.0 if last else self._backoff(attempt, delay)
            attempts.append(_attempt(attempt, outcome, error, time.perf_counter() - t0, wait))
            log.warning(
                "%s judge (%s) attempt %d/%d failed: %s",
                self.role,
                self.config.model,
                attempt + 1,
                total,
                error,
            )
            if last:
                break
            self._sleep(wait)
        summary = f"{self.role} judge gave no usable answer after {len(attempts)} attempt(s): " + (
            attempts[-1]["error"] if attempts else "no attempt made"
        )
        return ChatOutcome(
            value=None,
            raw=self.scrub(raw) if raw is not None else None,
            attempts=tuple(attempts),
            error=summary,
            seconds=time.perf_counter() - started,
        )

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.config.retry_after_max)
        base = self.config.backoff_base * (2**attempt)
        # Jitter spreads the retries of concurrent verifications of one batch.
        return min(self.config.backoff_max, base + random.uniform(0, self.config.backoff_base))


class OpenAIVerifier:
    def __init__(
        self, config: RoleConfig, *, template: str | None = None, **client_options: Any
    ) -> None:
        self.client = ChatClient(config, role="verifier", **client_options)
        self.template = string.Template(template or load_prompt("verifier"))
        self.name = f"openai:{config.model}"

    def __repr__(self) -> str:
        return f"OpenAIVerifier({self.client!r})"

    def verify(
        self, image: np.ndarray, prompt: str, *, metadata: Mapping[str, Any] | None = None
    ) -> Verdict:
        text = self.template.safe_substitute(
            prompt=_quote(prompt), checklist=render_checklist(metadata)
        )
        messages = [_image_message(text, image, self.client.config)]
        out = self.client.complete(messages, parse_verdict)
        details = {"attempts": list(out.attempts), "seconds": out.seconds}
        if out.value is None:
            return Verdict(
                correct=UNKNOWN,
                score=0.0,
                reason="",
                judge=self.name,
                raw=out.raw,
                details=details,
                error=out.error,
            )
        details["notes"] = list(out.value.notes)
        return Verdict(
            correct=out.value.correct,
            score=out.value.score,
            reason=out.value.reason,
            judge=self.name,
            raw=out.raw,
            details=details,
        )


class OpenAICaptioner:
    def __init__(
        self, config: RoleConfig, *, template: str | None = None, **client_options: Any
    ) -> None:
        self.client = ChatClient(config, role="captioner", **client_options)
        self.template = string.Template(template or load_prompt("captioner"))
        self.name = f"openai:{config.model}"

    def __repr__(self) -> str:
        return f"OpenAICaptioner({self.client!r})"

    def caption(self, image: np.ndarray, prompt: str) -> Caption:
        text = self.template.safe_substitute(prompt=_quote(prompt))
        out = self.client.complete([_image_message(text, image, self.client.config)], parse_caption)
        details = {"attempts": list(out.attempts), "seconds": out.seconds}
        return Caption(
            text=out.value or "", judge=self.name, raw=out.raw, details=details, error=out.error
        )


class OpenAIProposer:
    def __init__(
        self, config: RoleConfig, *, template: str | None = None, **client_options: Any
    ) -> None:
        self.client = ChatClient(config, role="proposer", **client_options)
        self.template = string.Template(template or load_prompt("proposer"))
        self.name = f"openai:{config.model}"

    def __repr__(self) -> str:
        return f"OpenAIProposer({self.client!r})"

    def propose(self, prompt: str, caption: Caption, verdict: Verdict, k: int) -> Proposal:
        text = self.template.safe_substitute(
            prompt=_quote(prompt),
            caption=_quote(caption.text),
            reason=_quote(verdict.reason or "the image does not match the instruction"),
            k=str(k),
        )
        out = self.client.complete([{"role": "user", "content": text}], parse_candidates)
        if out.value is None:
            return Proposal(candidates=(), judge=self.name, raw=out.raw, error=out.error)
        from npc_rt.prompt import clean_candidates  # the core's rules (Rust)

        return Proposal(
            candidates=tuple(clean_candidates(out.value, k)), judge=self.name, raw=out.raw
        )


def load_prompt(role: str) -> str:
    """A role prompt shipped as package data (``npc_rt/judges/prompts/<role>.txt``)."""
    path = resources.files("npc_rt.judges").joinpath("prompts", f"{role}.txt")
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInputError(f"no prompt for judge role {role!r}") from None


def render_checklist(metadata: Mapping[str, Any] | None) -> str:
    """A GenEval-style ``include``/``exclude`` description as a checklist line block, or ""."""
    if not metadata:
        return ""
    lines: list[str] = []
    for item in metadata.get("include", ()) or ():
        if not isinstance(item, Mapping) or "class" not in item:
            continue
        words = [str(item.get("count", 1)), str(item.get("color", "") or ""), str(item["class"])]
        line = " ".join(w for w in words if w)
        position = item.get("position")
        if isinstance(position, Sequence) and len(position) == 2 and not isinstance(position, str):
            line += f" ({position[0]} object #{position[1]})"
        for key in ("region", "size"):
            if item.get(key):
                line += f", {key}: {item[key]}"
        lines.append(f"- present: {line}")
    for item in metadata.get("exclude", ()) or ():
        if isinstance(item, Mapping) and "class" in item:
            lines.append(f"- absent or fewer than {item.get('count', 1)}: {item['class']}")
    return ("Checklist:\n" + "\n".join(lines) + "\n") if lines else ""


def encode_image_data_url(image: np.ndarray, image_format: str = "png", quality: int = 90) -> str:
    """A ``data:image/...;base64,...`` URL of a ``uint8 [H, W, 3]`` RGB image."""
    from PIL import Image

    pixels = np.asarray(image)
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise InvalidInputError(
            f"judge images must be uint8 [H, W, 3], got {pixels.dtype} {list(pixels.shape)}"
        )
    if image_format not in IMAGE_FORMATS:
        raise InvalidInputError(
            f"image format must be one of {IMAGE_FORMATS}, got {image_format!r}"
        )
    buffer = io.BytesIO()
    if image_format == "png":
        Image.fromarray(pixels, "RGB").save(buffer, format="PNG")
    else:
        Image.fromarray(pixels, "RGB").save(buffer, format="JPEG", quality=quality)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"data:image/{image_format};base64,{encoded}"


def _image_message(text: str, image: np.ndarray, config: RoleConfig) -> dict[str, Any]:
    url = encode_image_data_url(image, config.image_format, config.jpeg_quality)
    return {
        "role": "user",
        "content": [
            {"type": "text", "text": text},
            {"type": "image_url", "image_url": {"url": url}},
        ],
    }


def _message_text(response: Any) -> str:
    try:
        content = response.choices[0].message.content
    except (AttributeError, IndexError, TypeError):
        raise MalformedJudgeAnswerError("chat response has no message") from None
    if not isinstance(content, str) or not content.strip():
        raise MalformedJudgeAnswerError("chat response message is empty")
    return content


def _read_api_key(env_name: str | None) -> str | None:
    if not env_name:  # None or "": a server that takes no key
        return None
    value = os.environ.get(env_name)
    if not value:
        raise InvalidInputError(
            f"environment variable {env_name} (the judge API key) is not set or empty; "
            "for a server that takes no key, pass api_key_env='' (CLI: --api-key-env '')"
        )
    return value


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _status_error(exc: Any) -> str:
    body = ""
    try:
        body = " ".join(exc.response.text.split())[:200]
    except Exception:  # noqa: BLE001 - the body is a courtesy, the status is what matters
        body = ""
    return f"HTTP {exc.status_code}" + (f": {body}" if body else "")


def _attempt(
    attempt: int, outcome: str, error: str | None, seconds: float, waited: float
) -> dict[str, Any]:
    return {
        "attempt": attempt + 1,
        "outcome": outcome,
        "error": error,
        "seconds": round(seconds, 4),
        "waited": round(waited, 4),
    }


def _quote(text: str) -> str:
    # The templates put user text between double quotes; keep it on one line and unambiguous.
    return json.dumps(" ".join(str(text).split()))[1:-1]
