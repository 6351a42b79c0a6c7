"""/generate's output formats over real sockets: gunicorn in front of the simulator."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from app.formats import FRAMINGS
from tests.client import generate, parse
from tests.servers import ProxyServer, configure

pytestmark = pytest.mark.integration

ANSWER = " ".join(f"word{number}" for number in range(120))
KNOWN = {"events": 6, "text": ANSWER}


@pytest.fixture
def proxy(own_proxy: ProxyServer) -> ProxyServer:
    """This module's own proxy: the failures below must not pause the shared one's keys."""
    return own_proxy


@pytest.fixture
def cut_proxy(start_proxy) -> ProxyServer:
    """A proxy for one mid-stream cut: the cut pauses a key, which must not outlive the test."""
    return start_proxy()


def read_as(name: str, response: requests.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith(FRAMINGS[name].media_type)
    return parse(name, response.content)


@pytest.mark.parametrize(
    ("params", "headers", "name"),
    [
        ({"format": "ndjson"}, {}, "ndjson"),
        ({}, {"Accept": "application/x-ndjson"}, "ndjson"),
        ({"format": "sse"}, {}, "sse"),
        ({}, {"Accept": "text/event-stream"}, "sse"),
        ({"format": "json"}, {"Accept": "text/event-stream"}, "json"),
    ],
    ids=["ndjson-query", "ndjson-accept", "sse-query", "sse-accept", "query-wins"],
)
def test_each_format_streams_the_arrays_chunks(
    proxy: ProxyServer, sim: str, params: dict, headers: dict, name: str
) -> None:
    """Over real sockets: the same chunks as the JSON array, framed as asked."""
    configure(sim, {"default": KNOWN})
    expected = generate(proxy).json()
    chunks = read_as(name, generate(proxy, params=params, headers=headers))
    assert chunks == expected and chunks[-1]["content"] == ANSWER


@pytest.mark.parametrize("name", ["json", "ndjson", "sse"])
def test_delta_content_over_real_sockets(proxy: ProxyServer, sim: str, name: str) -> None:
    """?content=delta: the contents concatenated are the answer, in every format."""
    configure(sim, {"default": KNOWN})
    chunks = read_as(name, generate(proxy, params={"format": name, "content": "delta"}))
    assert len(chunks) > 1 and "".join(chunk["content"] for chunk in chunks) == ANSWER


@pytest.mark.parametrize("name", ["json", "ndjson", "sse"])
def test_a_mid_stream_failure_ends_each_format_properly(
    cut_proxy: ProxyServer, sim: str, name: str
) -> None:
    """A cut after a chunk: the format's own error ending, and the body still parses."""
    configure(sim, {"default": {**KNOWN, "cut_after": 4}})
    *chunks, error = read_as(name, generate(cut_proxy, params={"format": name}))
    assert chunks and error["error"]["code"] == 502
    assert error["chunk_number"] == len(chunks) + 1


@pytest.mark.parametrize(
    "params", [{"format": "xml"}, {"content": "diff"}], ids=["format", "content"]
)
def test_unknown_output_options_are_a_400_before_gemini_is_called(
    proxy: ProxyServer, sim: str, params: dict
) -> None:
    """Bad ?format= or ?content=: plain JSON 400, whatever Accept says."""
    response = generate(proxy, params=params, headers={"Accept": "text/event-stream"})
    assert response.status_code == 400 and response.json()["error"]["code"] == 400


def test_errors_before_streaming_stay_plain_json_in_every_format(
    proxy: ProxyServer, sim: str
) -> None:
    """A Gemini 400 with ?format=sse: its status and a JSON body, not an event stream."""
    configure(sim, {"default": {"status": 400}})
    response = generate(proxy, params={"format": "sse"})
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/json")
