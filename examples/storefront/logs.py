"""Structured logs: one JSON object per line on stdout, correlated with traces, secrets removed.

This is the stand-in for Pino in the NestJS services. :func:`configure_logging` sets up
`structlog <https://www.structlog.org/>`_ so that every line written by the service, whether by
structlog or by a standard-library logger (uvicorn, botocore, OpenTelemetry), is one JSON object
with the same fields:

* ``timestamp``: ISO 8601 in UTC;
* ``level``: ``debug``, ``info``, ``warning``, ``error`` or ``critical``;
* ``service``: the service's name;
* ``trace_id`` and ``span_id``: the current OpenTelemetry span's ids as lower-case hex, exactly as
  they appear in a W3C ``traceparent`` header (32 and 16 digits), or null outside a span, so a log
  search jumps straight to the trace;
* ``event``: the message, plus whatever key-value pairs the call passed.

:func:`redact_secrets` runs before anything is written. It walks the whole event (nested dicts,
lists, tuples, header pairs) and replaces with ``[REDACTED]``:

* the value of any key that names a credential: ``Authorization``, ``Proxy-Authorization``,
  ``Cookie``, ``Set-Cookie``, and keys ending in ``password``, ``passwd``, ``secret``, ``token``,
  ``api_key`` or ``apikey`` (``client_secret``, ``refresh_token``, ``X-Api-Key``,
  ``accessToken``...), compared case-insensitively with ``-`` read as ``_``;
* inside every string: card numbers (13 to 19 digits, optionally grouped by spaces or hyphens,
  that pass the Luhn check), JSON Web Tokens (``eyJ...``), and the credential after ``Bearer``.

A random 13 to 19 digit number passes the Luhn check one time in ten, so an occasional order
number is redacted too: the price of never writing a card number.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

import structlog
from opentelemetry import trace
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED = "[REDACTED]"
MAX_DEPTH = 32  # deeper structures are cut off (and cycles end) here

# --8<-- [start:redaction]
_SECRET_KEY_SUFFIXES = ("password", "passwd", "secret", "token", "api_key", "apikey")
_SECRET_KEYS = frozenset({"authorization", "proxy_authorization", "cookie", "set_cookie"})

_CARD_CANDIDATE = re.compile(r"(?<!\d)\d(?:[ -]?\d){12,18}(?!\d)")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/-]+=*")


def is_secret_key(key: object) -> bool:
    """Whether a mapping key (or header name) names a credential.

    Args:
        key: A dict key or header name, ``str`` or ``bytes``.

    Returns:
        True for ``Authorization``, ``Cookie``, ``Set-Cookie`` and keys ending in a credential
        word (``password``, ``secret``, ``token``, ``api_key``...), in any case.
    """
    if isinstance(key, bytes):
        key = key.decode("latin-1")
    if not isinstance(key, str):
        return False
    normalised = key.strip().lower().replace("-", "_")
    return normalised in _SECRET_KEYS or normalised.endswith(_SECRET_KEY_SUFFIXES)


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check that every payment card number passes.

    Args:
        digits: Decimal digits only.

    Returns:
        True when the check digit is right.
    """
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    return REDACTED if luhn_valid(digits) else match.group(0)


def redact_text(text: str) -> str:
    """``text`` with card numbers, JSON Web Tokens and bearer credentials replaced."""
    text = _JWT.sub(REDACTED, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return _CARD_CANDIDATE.sub(_mask_card, text)


def redact_value(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` with every secret replaced by ``[REDACTED]``.

    Mappings, lists, tuples and sets are copied, never changed in place, so the caller's
    objects stay as they were; ``bytes`` become text (UTF-8, undecodable bytes replaced) so that
    they are searched too. A list of ``(name, value)`` pairs (ASGI or HTTP headers) is read as
    headers: a pair whose name is a secret key keeps its name and loses its value.

    Args:
        value: Anything a log call was given.
        depth: How deep in the structure this value sits (recursion guard).

    Returns:
        The redacted copy.
    """
    if depth > MAX_DEPTH:
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, (bytes, bytearray)):
        return redact_text(bytes(value).decode("utf-8", errors="replace"))
    if isinstance(value, Mapping):
        return {
            key: REDACTED if is_secret_key(key) else redact_value(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        if len(value) == 2 and isinstance(value[0], (str, bytes)) and is_secret_key(value[0]):
            return type(value)((redact_value(value[0], depth + 1), REDACTED))
        return type(value)(redact_value(item, depth + 1) for item in value)
    if isinstance(value, (set, frozenset)):
        return [redact_value(item, depth + 1) for item in value]
    return value


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """A structlog processor: remove secrets from the whole event before it is rendered."""
    return {
        key: REDACTED if is_secret_key(key) else redact_value(value)
        for key, value in event_dict.items()
    }


# --8<-- [end:redaction]


# --8<-- [start:trace-correlation]
def add_trace_context(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """A structlog processor: the current span's W3C trace id and span id (hex), or null."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict["trace_id"] = format(context.trace_id, "032x")
        event_dict["span_id"] = format(context.span_id, "016x")
    else:
        event_dict["trace_id"] = None
        event_dict["span_id"] = None
    return event_dict


# --8<-- [end:trace-correlation]


def _add_service(service_name: str) -> Processor:
    def add_service(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", service_name)
        return event_dict

    return add_service


def _shared_processors(service_name: str) -> list[Processor]:
    """The chain every line passes, from structlog and from standard-library loggers alike."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.format_exc_info,
        redact_secrets,  # after the traceback is text, before anything is added or written
        add_trace_context,
        _add_service(service_name),
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
    ]


class _NamedWriteLogger(structlog.WriteLogger):
    """A :class:`structlog.WriteLogger` that knows the name it was asked for."""

    def __init__(self, file: TextIO, name: str) -> None:
        super().__init__(file)
        self.name = name


class _NamedWriteLoggerFactory:
    """Make :class:`_NamedWriteLogger` objects (``get_logger(name)`` passes the name here)."""

    def __init__(self, file: TextIO) -> None:
        self._file = file

    def __call__(self, *args: Any) -> _NamedWriteLogger:
        return _NamedWriteLogger(self._file, str(args[0]) if args else "")


def _add_logger_name(logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Name the logger (structlog's own, or the standard-library record's) when there is one."""
    record = event_dict.get("_record")
    name = record.name if record is not None else getattr(logger, "name", "")
    if name:
        event_dict.setdefault("logger", name)
    return event_dict


_OWN_HANDLER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


class _JsonLinesHandler(logging.StreamHandler):  # type: ignore[type-arg]  # generic in typeshed
    """The root handler :func:`configure_logging` installs (marked so it is replaced, not added)."""


# --8<-- [start:configure-logging]
def configure_logging(
    service_name: str,
    *,
    level: str | int = "INFO",
    stream: TextIO | None = None,
    cache_loggers: bool = True,
) -> None:
    """Write every log line of the process as one JSON object to ``stream`` (stdout).

    Calling it again replaces the previous configuration (the handler it installed on the root
    logger included), so it is safe to call at start-up and from tests. uvicorn's loggers are
    routed through the root logger too; start uvicorn with ``log_config=None`` so that it does not
    install its own text handlers afterwards.

    Args:
        service_name: The ``service`` field of every line.
        level: The minimum level written (name or number), for structlog and the standard
            library alike.
        stream: Where lines go; stdout when None (the container runtime ships it to CloudWatch).
        cache_loggers: Let structlog cache each logger's processor chain on first use (fast; tests
            that reconfigure logging pass False).
    """
    output = stream if stream is not None else sys.stdout
    numeric_level = (
        logging.getLevelNamesMapping()[level.upper()] if isinstance(level, str) else level
    )
    shared = _shared_processors(service_name)
    structlog.configure(
        processors=[_add_logger_name, *shared, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=_NamedWriteLoggerFactory(output),
        cache_logger_on_first_use=cache_loggers,
    )

    # Standard-library records (uvicorn, botocore, OpenTelemetry) get the same fields.
    handler = _JsonLinesHandler(output)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                _add_logger_name,
                structlog.stdlib.ExtraAdder(),
                *shared,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _JsonLinesHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric_level)
    # uvicorn's own logging config gives its loggers handlers that bypass the root logger: send
    # them through it instead (and start uvicorn with log_config=None so it leaves them alone).
    for name in _OWN_HANDLER_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True


# --8<-- [end:configure-logging]


def get_logger(name: str | None = None, **initial_values: Any) -> Any:
    """A structlog logger whose lines carry ``logger``: ``name`` when one is given.

    Args:
        name: Usually ``__name__``.
        **initial_values: Key-value pairs on every line this logger writes.

    Returns:
        A lazy structlog logger: the configuration is read at its first use, so a module-level
        logger follows a later :func:`configure_logging`.
    """
    if name is None:
        return structlog.get_logger(**initial_values)
    return structlog.get_logger(name, **initial_values)


def bind_request_context(values: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> None:
    """Add key-value pairs to every line logged in the current request or task (contextvars).

    Args:
        values: For example ``{"request_id": ..., "user": principal.subject}``.
    """
    structlog.contextvars.bind_contextvars(**dict(values))


def clear_request_context() -> None:
    """Drop what :func:`bind_request_context` added (call at the end of a request)."""
    structlog.contextvars.clear_contextvars()
