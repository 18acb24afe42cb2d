"""How the library's errors are rebuilt in another process from their JSON-safe ``args``.

An error's ``args`` are its constructor's arguments, each read from the field of its name, in forms that
survive ``json.dumps`` and ``json.loads`` (as Celery's JSON results need, and as builtin exceptions allow):
a moment is an ISO 8601 string, a tuple a list, an error a dict of its class's name and its own ``args``, a
chunk a dict of its fields, a report a dict of its fields. The httpx exception a ``TransportError`` wraps is
left out: its request holds the Authorization header.
"""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from ._models import RejectedChunk, UnresolvedChunk, UnsentChunk

__all__ = [
    "arguments",
    "chunks_data",
    "error_data",
    "error_of",
    "iso",
    "jsonable",
    "message_args",
    "moment",
    "rejected_of",
    "register_error",
    "register_form",
    "unresolved_of",
    "unsent_of",
]

Data = dict[str, Any]
T = TypeVar("T")

#: What ``BaseException`` keeps as ``args``: for our errors, the message (``str`` and ``repr`` read it).
_MESSAGE_ARGS: Any = vars(BaseException)["args"]
#: A parameter without a default: its argument is never left out of ``args``.
_REQUIRED: Any = object()
_PARAMETERS: dict[type[BaseException], tuple[tuple[str, object], ...]] = {}
#: The library's error classes by name (``register_error``); the first registered is the fallback.
_ERRORS: dict[str, type[BaseException]] = {}
#: The JSON-safe form of a value of a type of a higher layer (``register_form``: a report).
_FORMS: dict[type, Callable[[Any], object]] = {}


def register_error(cls: type[BaseException]) -> None:
    """Let ``error_of`` rebuild ``cls`` by its name (each of the library's error classes, as defined)."""
    _ERRORS.setdefault(cls.__name__, cls)


def register_form(cls: type[T], form: Callable[[T], object]) -> None:
    """Put a field of type ``cls`` into ``args`` as ``form`` makes it (a type the errors cannot import)."""
    _FORMS[cls] = form


def arguments(error: BaseException) -> tuple[Any, ...]:
    """``error.args``: its constructor's positional arguments, each the field of its name made JSON-safe,
    without the trailing ones equal to their defaults (as short as the call that made it)."""
    try:
        values = [(_argument(error, name), default) for name, default in _parameters(type(error))]
    except (AttributeError, ValueError, TypeError):  # a subclass whose parameters are not its fields
        return message_args(error)
    while values and _is_default(*values[-1]):
        values.pop()
    return tuple(value for value, _ in values)


def message_args(error: BaseException) -> tuple[Any, ...]:
    """What ``BaseException`` keeps as the error's ``args``: for ours, ``(message,)``."""
    kept: tuple[Any, ...] = _MESSAGE_ARGS.__get__(error)
    return kept


def _parameters(cls: type[BaseException]) -> tuple[tuple[str, object], ...]:
    """The positional parameters of a class's constructor: each one's name and default, JSON-safe."""
    if cls not in _PARAMETERS:
        _PARAMETERS[cls] = tuple(
            (name, _REQUIRED if parameter.default is parameter.empty else jsonable(parameter.default))
            for name, parameter in inspect.signature(cls).parameters.items()
            if parameter.kind is parameter.POSITIONAL_OR_KEYWORD
        )
    return _PARAMETERS[cls]


def _argument(error: BaseException, name: str) -> object:
    if name == "outcome_unknown":  # named only when it is not the class's
        unknown = getattr(error, "outcome_unknown", None)
        return unknown if unknown != getattr(type(error), "outcome_unknown", None) else None
    if name == "message" and "message" not in vars(error):
        return str(error)
    return jsonable(getattr(error, name))


def _is_default(value: object, default: object) -> bool:
    return default is not _REQUIRED and type(value) is type(default) and value == default


def moment(value: dt.datetime | str | None, name: str) -> dt.datetime | None:
    """A datetime given as itself or as the ISO 8601 string ``iso`` made of it."""
    if value is None or isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            pass
    raise TypeError(f"{name}: expected a datetime or an ISO 8601 string, got {value!r}")


def iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def error_data(error: BaseException) -> Data:
    """An error of the library as its class's name and its ``args``; any other as its name and message."""
    cls = type(error)
    if _ERRORS.get(cls.__name__) is cls:
        return {"type": cls.__name__, "args": list(error.args)}
    return {"type": f"{cls.__module__}.{cls.__qualname__}", "message": str(error)}


def error_of(data: BaseException | Mapping[str, Any]) -> BaseException:
    """The error ``error_data`` described (one that is not the library's, as an ``EngageLabError`` naming
    it: only the library's own classes are ever built from data)."""
    if isinstance(data, BaseException):
        return data
    cls = _ERRORS.get(str(data.get("type")))
    if cls is not None and "args" in data:
        return cls(*data["args"])
    fallback = next(iter(_ERRORS.values()))
    return fallback(f"{data.get('type')}: {data.get('message', '')}")


def _chunk_data(chunk: UnresolvedChunk | RejectedChunk | UnsentChunk) -> Data:
    data: Data = {"request_id": chunk.request_id, "recipients": list(chunk.recipients)}
    if isinstance(chunk, (UnresolvedChunk, RejectedChunk)):
        data["error"] = error_data(chunk.error)
    if isinstance(chunk, UnresolvedChunk):
        data["first_attempt_at"] = iso(chunk.first_attempt_at)
    return data


def chunks_data(chunks: Iterable[UnresolvedChunk | RejectedChunk | UnsentChunk]) -> list[Data]:
    return [_chunk_data(chunk) for chunk in chunks]


def unresolved_of(chunks: Iterable[UnresolvedChunk | Mapping[str, Any]]) -> tuple[UnresolvedChunk, ...]:
    return tuple(
        chunk
        if isinstance(chunk, UnresolvedChunk)
        else UnresolvedChunk(
            chunk["request_id"],
            tuple(chunk["recipients"]),
            error_of(chunk["error"]),
            first_attempt_at=moment(chunk.get("first_attempt_at"), "first_attempt_at"),
        )
        for chunk in chunks
    )


def rejected_of(chunks: Iterable[RejectedChunk | Mapping[str, Any]]) -> tuple[RejectedChunk, ...]:
    return tuple(
        chunk
        if isinstance(chunk, RejectedChunk)
        else RejectedChunk(chunk["request_id"], tuple(chunk["recipients"]), error_of(chunk["error"]))
        for chunk in chunks
    )


def unsent_of(chunks: Iterable[UnsentChunk | Mapping[str, Any]]) -> tuple[UnsentChunk, ...]:
    return tuple(
        chunk
        if isinstance(chunk, UnsentChunk)
        else UnsentChunk(chunk["request_id"], tuple(chunk["recipients"]))
        for chunk in chunks
    )


def jsonable(value: object) -> object:
    """A field of an error as it goes into ``args``: moments, chunks, reports and tuples made JSON-safe."""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if (form := _FORMS.get(type(value))) is not None:
        return form(value)
    if isinstance(value, (UnresolvedChunk, RejectedChunk, UnsentChunk)):
        return _chunk_data(value)
    if isinstance(value, (tuple, list)):
        return [jsonable(item) for item in value]
    return value
