"""Every exception of the library is rebuilt from its ``args``, as builtin exceptions are: ``args`` are the
constructor's arguments with JSON-safe values, so ``type(e)(*e.args)`` makes an equal error, fields and
message included, even after ``json.dumps``/``json.loads``. That is how Celery's JSON results bring a
worker's error back to ``result.get()`` (see ``test_job_queue_workers.py`` for a real worker)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engagelab_sms_async import (
    APIError,
    EngageLabError,
    RateLimitedError,
    RequestIdExpiredError,
    TransportError,
    UnresolvedChunksError,
    ValidationError,
)

from ._error_examples import EXAMPLES, KEY, NAMES, TOKEN, examples, shape

LATER = dt.datetime(2026, 12, 2, 9, 30, 15, 123456, tzinfo=dt.timezone.utc)


def rebuilt(error: EngageLabError) -> EngageLabError:
    return type(error)(*json.loads(json.dumps(error.args)))


def with_outcome(error: EngageLabError) -> EngageLabError:
    """The error as a send marks it when an attempt may have been carried out (``_judge``)."""
    error.outcome_unknown = not type(error).outcome_unknown
    error.first_attempt_at = LATER
    return error


@pytest.mark.parametrize("error", EXAMPLES, ids=NAMES)
def test_every_error_is_rebuilt_from_its_json_args_with_its_type_message_and_fields(
    error: EngageLabError,
) -> None:
    copy = rebuilt(error)
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert shape(copy, wrapped=False) == shape(error, wrapped=False)


@pytest.mark.parametrize("error", [with_outcome(error) for error in examples()], ids=NAMES)
def test_outcome_unknown_and_first_attempt_set_after_the_error_was_made_are_in_its_args(
    error: EngageLabError,
) -> None:
    copy = rebuilt(error)
    assert (copy.outcome_unknown, copy.first_attempt_at) == (error.outcome_unknown, LATER)
    assert shape(copy, wrapped=False) == shape(error, wrapped=False)


@pytest.mark.parametrize("error", EXAMPLES, ids=NAMES)
def test_no_args_hold_the_key_or_the_authorization_header(error: EngageLabError) -> None:
    text = json.dumps(error.args)
    assert KEY not in text and TOKEN not in text


def test_args_name_only_the_arguments_given_as_a_call_would() -> None:
    assert ValidationError("to", "must hold 1 to 1000 numbers").args == ("to", "must hold 1 to 1000 numbers")
    assert APIError("teapot", code=5).args == ("teapot", 5)
    assert TransportError("reset", request_id="r").args == ("reset", "r")
    assert RequestIdExpiredError("r", LATER).args == ("r", "2026-12-02T09:30:15.123456+00:00")
    assert EngageLabError().args == ()


def test_a_chunk_in_args_is_a_dict_of_its_fields_and_its_error() -> None:
    [error] = [example for example in EXAMPLES if isinstance(example, UnresolvedChunksError)]
    [chunk] = error.args[1]
    assert chunk == {
        "request_id": "job:1",
        "recipients": ["+10000000001"],
        "error": {"type": "TransportError", "args": ["ConnectError on /send: connection refused", "job:1"]},
        "first_attempt_at": "2026-01-02T03:04:05+00:00",
    }


texts = st.text(max_size=40)
moments = st.datetimes(timezones=st.just(dt.timezone.utc))


@given(
    message=texts,
    code=st.none() | st.integers(),
    status_code=st.none() | st.integers(100, 599),
    request_id=st.none() | texts,
    retry_after=st.none() | st.floats(0, 1e6),
    outcome_unknown=st.booleans(),
    first_attempt_at=st.none() | moments,
)
def test_an_api_error_with_any_fields_is_rebuilt_from_its_json_args(
    message: str,
    code: int | None,
    status_code: int | None,
    request_id: str | None,
    retry_after: float | None,
    outcome_unknown: bool,
    first_attempt_at: dt.datetime | None,
) -> None:
    error = RateLimitedError(message, code, status_code, request_id, retry_after)
    error.outcome_unknown = outcome_unknown
    error.first_attempt_at = first_attempt_at
    copy = rebuilt(error)
    fields = (
        "message",
        "code",
        "status_code",
        "request_id",
        "retry_after",
        "outcome_unknown",
        "first_attempt_at",
    )
    assert [getattr(copy, name) for name in fields] == [getattr(error, name) for name in fields]
    assert str(copy) == str(error)


@given(message=texts, request_id=st.none() | texts, outcome_unknown=st.booleans())
def test_a_transport_error_with_any_fields_is_rebuilt_without_the_httpx_error_it_wraps(
    message: str, request_id: str | None, outcome_unknown: bool
) -> None:
    error = TransportError(message, request_id=request_id, error=OSError("reset"))
    error.outcome_unknown = outcome_unknown
    copy = rebuilt(error)
    assert (str(copy), copy.request_id, copy.outcome_unknown) == (str(error), request_id, outcome_unknown)
    assert copy.error is None
