"""The Gemini client, against `responses`: request shape, error mapping, streaming reads."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator

import pytest
import requests
import responses

from app.keys import Key
from app.upstream import (
    GeminiClient,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
)

BASE = "http://gemini.test"
URL = f"{BASE}/v1beta/models/gemini-2.5-flash:streamGenerateContent"
KEY = Key("k2", "secret-key-value")
BODY = b'{"contents": [{"parts": [{"text": "hi"}]}], "generation_config": {"x": 1}}'


def client() -> GeminiClient:
    return GeminiClient(BASE, timeout=5, pool_size=37)


def gemini_error(code: int, status: str, reason: str | None = None) -> dict:
    error: dict = {"code": code, "message": f"{status} happened", "status": status}
    if reason:
        error["details"] = [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "x"}
        ]
    return {"error": error}


@responses.activate
def test_request_goes_to_stream_generate_content_with_the_key_in_a_header_only() -> None:
    """POST ...:streamGenerateContent?alt=sse, key in x-goog-api-key, body as sent."""
    responses.post(URL, body=b"data: {}\r\n\r\n", content_type="text/event-stream")
    client().open_stream("gemini-2.5-flash", BODY, KEY).close()
    (call,) = responses.calls
    assert call.request.url == f"{URL}?alt=sse"
    assert call.request.headers["x-goog-api-key"] == KEY.secret
    assert KEY.secret not in call.request.url
    assert call.request.body == BODY
    assert call.request.headers["Accept-Encoding"] == "identity"


def test_the_pool_keeps_as_many_connections_as_a_worker_holds_streams() -> None:
    """pool_maxsize follows worker_connections."""
    adapter = client().session.get_adapter(f"{BASE}/")
    assert adapter._pool_maxsize == 37


@responses.activate
def test_a_stream_is_read_as_it_arrives() -> None:
    """iter_bytes yields the body; concatenated it is the whole stream."""
    body = b'data: {"a": 1}\r\n\r\ndata: {"b": 2}\r\n\r\n'
    responses.post(URL, body=body, content_type="text/event-stream")
    stream = client().open_stream("gemini-2.5-flash", BODY, KEY)
    assert b"".join(stream.iter_bytes()) == body


@pytest.mark.parametrize(
    ("status", "error_status"),
    [
        (400, "INVALID_ARGUMENT"),
        (404, "NOT_FOUND"),
        (429, "RESOURCE_EXHAUSTED"),
        (500, "INTERNAL"),
        (503, "UNAVAILABLE"),
    ],
)
@responses.activate
def test_gemini_errors_pass_through_with_their_status_and_body(
    status: int, error_status: str
) -> None:
    """A non-200 answer becomes UpstreamError with Gemini's status and JSON body unchanged."""
    responses.post(URL, json=gemini_error(status, error_status), status=status)
    with pytest.raises(UpstreamError) as caught:
        client().open_stream("gemini-2.5-flash", BODY, KEY)
    assert caught.value.status == status
    assert caught.value.body == gemini_error(status, error_status)
    assert caught.value.upstream_status == str(status)


@responses.activate
@pytest.mark.parametrize(
    ("status", "error_status", "reason", "kind"),
    [
        (400, "INVALID_ARGUMENT", "API_KEY_INVALID", "invalid_key"),
        (403, "PERMISSION_DENIED", "CONSUMER_SUSPENDED", "forbidden"),
    ],
)
@responses.activate
def test_a_refused_key_is_the_operators_problem_500_naming_the_key_id(
    status: int, error_status: str, reason: str, kind: str
) -> None:
    """An invalid or forbidden key becomes 500 with Gemini's details and the key's id only."""
    responses.post(URL, json=gemini_error(status, error_status, reason), status=status)
    with pytest.raises(UpstreamError) as caught:
        client().open_stream("gemini-2.5-flash", BODY, KEY)
    assert (caught.value.status, caught.value.verdict.kind) == (500, kind)
    error = caught.value.body["error"]
    assert error["status"] == "INTERNAL"
    assert error["key"] == "k2"
    assert error["upstream"]["details"][0]["reason"] == reason
    assert KEY.secret not in json.dumps(caught.value.body)


@responses.activate
def test_an_array_wrapped_error_body_is_unwrapped() -> None:
    """Gemini's non-SSE framing `[{"error": ...}]` reads like the plain one."""
    responses.post(URL, json=[gemini_error(429, "RESOURCE_EXHAUSTED")], status=429)
    with pytest.raises(UpstreamError) as caught:
        client().open_stream("gemini-2.5-flash", BODY, KEY)
    assert caught.value.body == gemini_error(429, "RESOURCE_EXHAUSTED")


@responses.activate
def test_a_non_json_error_body_becomes_a_gemini_shaped_one() -> None:
    """An HTML 502 from a load balancer is reported in the usual JSON shape."""
    responses.post(URL, body="<html>bad gateway</html>", status=502)
    with pytest.raises(UpstreamError) as caught:
        client().open_stream("gemini-2.5-flash", BODY, KEY)
    assert caught.value.status == 502
    assert caught.value.body["error"]["code"] == 502
    assert "without a JSON error body" in caught.value.body["error"]["message"]


@pytest.mark.parametrize(
    ("exception", "expected", "status"),
    [
        (requests.ConnectionError("refused"), UpstreamUnreachable, 502),
        (requests.ConnectTimeout("slow connect"), UpstreamUnreachable, 502),
        (requests.ReadTimeout("no byte"), UpstreamTimeout, 504),
    ],
)
@responses.activate
def test_transport_failures_map_to_502_and_504(
    exception: Exception, expected: type[UpstreamError], status: int
) -> None:
    """Unreachable is 502; no byte for the timeout is 504."""
    responses.post(URL, body=exception)
    with pytest.raises(expected) as caught:
        client().open_stream("gemini-2.5-flash", BODY, KEY)
    assert caught.value.status == status
    assert caught.value.body["error"]["code"] == status


UNCHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
CHUNKED_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)
EVENT_1, EVENT_2 = b'data: {"n": 1}\r\n\r\n', b'data: {"n": 2}\r\n\r\n'


class HeldBackServer:
    """A loopback server that sends `first`, then holds `rest` back until `release` is set."""

    def __init__(self, first: bytes, rest: bytes) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.release, self.rest_sent = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(first, rest), daemon=True)
        self.thread.start()

    def _serve(self, first: bytes, rest: bytes) -> None:
        connection, _ = self.listener.accept()
        with connection:
            request = b""
            # Read the whole request: closing with unread bytes would reset the connection.
            while not request.endswith(BODY):
                request += connection.recv(65536)
            connection.sendall(first)
            self.release.wait(10)
            with contextlib.suppress(OSError):  # the client may have hung up meanwhile
                connection.sendall(rest)
            self.rest_sent.set()

    def stop(self) -> None:
        self.release.set()
        self.thread.join(10)
        self.listener.close()


@pytest.fixture
def held_back() -> Iterator[Callable[[bytes, bytes], HeldBackServer]]:
    """Start HeldBackServers; each is released and stopped after the test."""
    servers: list[HeldBackServer] = []

    def start(first: bytes, rest: bytes) -> HeldBackServer:
        servers.append(HeldBackServer(first, rest))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def test_an_unchunked_stream_is_relayed_as_it_arrives_not_at_its_end(held_back) -> None:
    """Without chunked framing (a relay in front of Gemini) the first event is not held back."""
    server = held_back(UNCHUNKED_HEAD + EVENT_1, EVENT_2)
    stream = GeminiClient(server.url, timeout=5, pool_size=1).open_stream("m", BODY, KEY)
    reads = stream.iter_bytes()
    assert next(reads) == EVENT_1  # while the server still holds event 2 back
    server.release.set()
    assert b"".join(reads) == EVENT_2
    stream.close()


def test_an_unchunked_stream_that_stalls_times_out_as_504(held_back) -> None:
    """A silent unchunked upstream is a timeout (504), not a broken connection (502)."""
    server = held_back(UNCHUNKED_HEAD + EVENT_1, EVENT_2)
    stream = GeminiClient(server.url, timeout=0.5, pool_size=1).open_stream("m", BODY, KEY)
    reads = stream.iter_bytes()
    next(reads)
    with pytest.raises(UpstreamTimeout):
        next(reads)
    stream.close()


def http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def test_events_that_arrive_together_are_read_without_waiting_for_more(held_back) -> None:
    """Two HTTP chunks taken off the socket in one read: the second is not held back in the
    buffer (for a keep-alive's None) until Gemini sends something more."""
    server = held_back(CHUNKED_HEAD + http_chunk(EVENT_1) + http_chunk(EVENT_2), b"0\r\n\r\n")
    stream = GeminiClient(server.url, timeout=30, pool_size=1, keepalive=0.05).open_stream(
        "m", BODY, KEY
    )
    reads = stream.iter_bytes()
    assert [next(reads), next(reads)] == [EVENT_1, EVENT_2]
    stream.close()


def test_a_silence_yields_none_for_a_keepalive_and_the_stream_goes_on(held_back) -> None:
    """While Gemini is silent, iter_bytes yields None at each keep-alive interval; then the
    bytes that come after."""
    server = held_back(CHUNKED_HEAD + http_chunk(EVENT_1), http_chunk(EVENT_2) + b"0\r\n\r\n")
    stream = GeminiClient(server.url, timeout=30, pool_size=1, keepalive=0.05).open_stream(
        "m", BODY, KEY
    )
    reads = stream.iter_bytes()
    assert [next(reads), next(reads), next(reads)] == [EVENT_1, None, None]
    server.release.set()
    assert b"".join(data for data in reads if data is not None) == EVENT_2
    stream.close()


def test_a_chunked_stream_silent_past_the_timeout_is_a_504_after_its_keepalives(
    held_back,
) -> None:
    """Keep-alives go on during a silence, but a silence of the full timeout is UpstreamTimeout."""
    server = held_back(CHUNKED_HEAD + http_chunk(EVENT_1), http_chunk(EVENT_2))
    stream = GeminiClient(server.url, timeout=0.5, pool_size=1, keepalive=0.1).open_stream(
        "m", BODY, KEY
    )
    reads = stream.iter_bytes()
    assert next(reads) == EVENT_1
    silences = 0
    with pytest.raises(UpstreamTimeout):
        while next(reads) is None:
            silences += 1
    assert silences >= 2
    stream.close()


def test_closing_a_finished_stream_does_not_wait_for_a_slow_tail(held_back) -> None:
    """Reading the tail for reuse is bounded: close returns while the upstream still holds it."""
    server = held_back(CHUNKED_HEAD + http_chunk(EVENT_1), b"0\r\n\r\n")
    stream = GeminiClient(server.url, timeout=30, pool_size=1).open_stream("m", BODY, KEY)
    assert next(stream.iter_bytes()) == EVENT_1
    stream.close(reuse=True)
    assert not server.rest_sent.is_set()


@responses.activate
def test_a_redirect_is_not_followed_so_the_key_goes_nowhere_else() -> None:
    """A 3xx is a 502 from the proxy; the key is never sent to the redirect's target."""
    responses.post(URL, status=307, headers={"Location": "http://elsewhere.test/steal"})
    responses.post("http://elsewhere.test/steal", body=b"data: {}\r\n\r\n")
    with pytest.raises(UpstreamError) as caught:
        client().open_stream("gemini-2.5-flash", BODY, KEY)
    assert caught.value.status == 502
    assert [call.request.url.split("?")[0] for call in responses.calls] == [URL]


@responses.activate
def test_the_shared_session_keeps_no_cookies() -> None:
    """A cookie set on one client's call must not ride along on another's."""
    responses.post(URL, body=b"data: {}\r\n\r\n", headers={"Set-Cookie": "sid=abc; Path=/"})
    gemini = client()
    gemini.open_stream("gemini-2.5-flash", BODY, KEY).close()
    assert len(gemini.session.cookies) == 0


def test_proxy_and_ca_variables_are_read_once_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTPS_PROXY, NO_PROXY and REQUESTS_CA_BUNDLE still apply, read when the client is made."""
    monkeypatch.setenv("HTTPS_PROXY", "http://egress.internal:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/corporate.pem")
    session = GeminiClient("https://gemini.test", timeout=5, pool_size=1).session
    assert session.proxies["https"] == "http://egress.internal:3128"
    assert session.verify == "/etc/ssl/corporate.pem"
    assert session.trust_env is False  # not read again on every call
    monkeypatch.setenv("NO_PROXY", "gemini.test")
    assert (
        "https" not in GeminiClient("https://gemini.test", timeout=5, pool_size=1).session.proxies
    )
