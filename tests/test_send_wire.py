"""What ``POST /v1/send`` puts on the wire: the Content-Type of the provider's page (seed 002), character for
character, and a compact UTF-8 JSON body."""

from __future__ import annotations

import datetime as dt
import json

from engagelab_sms_async import AsyncClient

from .conftest import RecordingTransport

OK_TO = ["+12673800456"]


async def test_a_send_declares_json_in_utf8_exactly_as_the_provider_page_writes_it(
    offline_client: AsyncClient, recorder: RecordingTransport
) -> None:
    await offline_client.send(OK_TO, 1)
    assert recorder.requests[0].headers["Content-Type"] == "application/json;charset=utf-8"


async def test_a_send_body_is_compact_json_with_text_in_utf8_not_escaped(
    offline_client: AsyncClient, recorder: RecordingTransport
) -> None:
    await offline_client.send(OK_TO, 1, vars={"name": "José 山田"}, custom_args={"note": "ü"})
    body = recorder.requests[0].content
    assert "José 山田".encode() in body and "ü".encode() in body
    assert body == json.dumps(json.loads(body), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


async def test_a_status_call_carries_no_body_and_no_content_type(
    offline_client: AsyncClient, recorder: RecordingTransport
) -> None:
    await offline_client.get_status(dt.date.today())
    assert "content-type" not in recorder.requests[0].headers
    assert recorder.requests[0].content == b""
