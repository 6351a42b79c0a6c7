"""The HTTP client for Gemini's `streamGenerateContent`, over one pooled Session per worker.

Usage::

    client = GeminiClient("https://generativelanguage.googleapis.com", timeout=300, pool_size=1000)
    stream = client.open_stream("gemini-2.5-flash", body_bytes, key)  # or raises UpstreamError
    for data in stream.iter_bytes():
        ...
    stream.close()
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from http.cookiejar import DefaultCookiePolicy
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import HTTPError, ReadTimeoutError

from .errors import error_body, error_reasons, parse_gemini_error
from .keys import Key

STREAM_PATH = "/v1beta/models/{model}:streamGenerateContent"
CONNECT_TIMEOUT = 10.0
# Gemini's error bodies are a few KB; never buffer an unbounded one from a misbehaving upstream.
MAX_ERROR_BODY = 64 * 1024
INVALID_KEY_REASON = "API_KEY_INVALID"
# The most bytes one read of an unchunked stream waits for; it returns sooner with what arrived.
READ_SIZE = 64 * 1024
BROKE_OFF = "the Gemini stream broke off"
# Reading a finished stream's tail to reuse its connection is worth a moment, not a stall: past
# either bound the connection is dropped instead.
DRAIN_TIMEOUT = 1.0
DRAIN_BUDGET = 64 * 1024


class UpstreamError(Exception):
    """A call to Gemini that failed before its stream could be relayed."""

    def __init__(self, status: int, body: dict[str, Any], upstream_status: str) -> None:
        super().__init__(body["error"].get("message", ""))
        self.status = status
        self.body = body
        # The label for the upstream metric: Gemini's HTTP status, or "timeout" / "unreachable".
        self.upstream_status = upstream_status


class UpstreamUnreachable(UpstreamError):
    """No HTTP answer from Gemini: connection refused, reset, DNS, TLS or a cut stream."""

    def __init__(self, message: str) -> None:
        super().__init__(502, error_body(502, message), "unreachable")


class UpstreamTimeout(UpstreamError):
    """Gemini sent no byte for the configured timeout."""

    def __init__(self, seconds: float) -> None:
        message = f"Gemini sent nothing for {seconds:g} s"
        super().__init__(504, error_body(504, message), "timeout")


class GeminiClient:
    """Opens streaming generations on Gemini; one instance per worker process."""

    def __init__(
        self,
        base_url: str,
        timeout: float,
        pool_size: int,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        # One Session serves every client of the worker: keep no cookies from any answer.
        self.session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        # pool_maxsize bounds the connections kept per host, so it must cover every stream a
        # worker can hold at once (worker_connections) or finished streams' sockets are thrown away.
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)

    def open_stream(self, model: str, body: bytes, key: Key) -> UpstreamStream:
        """Start a generation; return its open stream or raise UpstreamError."""
        url = self.base_url + STREAM_PATH.format(model=model)
        headers = {
            "Content-Type": "application/json",
            "x-goog-api-key": key.secret,
            # A compressed stream would sit in the decompressor's buffer; ask for plain bytes.
            "Accept-Encoding": "identity",
        }
        try:
            response = self.session.post(
                url,
                params={"alt": "sse"},
                data=body,
                headers=headers,
                stream=True,
                timeout=(min(CONNECT_TIMEOUT, self.timeout), self.timeout),
                # A redirect would carry x-goog-api-key to wherever it points.
                allow_redirects=False,
            )
        except requests.Timeout as error:
            if isinstance(error, requests.ConnectTimeout):
                raise UpstreamUnreachable("Gemini did not accept the connection in time") from None
            raise UpstreamTimeout(self.timeout) from None
        except requests.RequestException as error:
            raise UpstreamUnreachable(f"Gemini is unreachable ({type(error).__name__})") from None
        if response.status_code != 200:
            raise _http_error(response, key)
        return UpstreamStream(response, self.timeout)


class UpstreamStream:
    """An open 200 stream from Gemini; iterate its bytes, then close it."""

    def __init__(self, response: requests.Response, timeout: float) -> None:
        self.response = response
        self.timeout = timeout
        self._reads = self._read()

    def iter_bytes(self) -> Iterator[bytes]:
        """The body as it arrives; raises UpstreamError if it breaks or stalls."""
        return self._reads

    def close(self, reuse: bool = False) -> None:
        """Release the connection; safe to call more than once.

        With `reuse`, for a stream whose answer is complete, the rest of the body (normally just
        the chunked terminator) is read first, within DRAIN_TIMEOUT and DRAIN_BUDGET, so the
        connection goes back to the pool instead of costing the next request a TCP and TLS
        handshake. A tail that is longer or slower gets the connection dropped.
        """
        if reuse:
            self._drain()
        self.response.close()

    def _drain(self) -> None:
        connection = self.response.raw.connection
        if connection is not None and connection.sock is not None:
            # urllib3 sets the read timeout afresh on each request, so this one lasts only here.
            connection.sock.settimeout(DRAIN_TIMEOUT)
        read = 0
        with contextlib.suppress(UpstreamError):
            for data in self._reads:
                read += len(data)
                if read > DRAIN_BUDGET:
                    return

    def _read(self) -> Iterator[bytes]:
        raw = self.response.raw
        try:
            if raw.chunked:
                # chunk_size=None hands over each HTTP chunk as it arrives; iter_lines would hold
                # back the last line until more data came (requests#2433).
                yield from self.response.iter_content(chunk_size=None)
            else:
                # Unchunked (a relay in front of Gemini), iter_content(None) would read to the end
                # of the body before yielding; read1 returns whatever has arrived.
                while data := raw.read1(READ_SIZE, decode_content=True):
                    yield data
        except (requests.ConnectionError, ReadTimeoutError) as error:
            # iter_content wraps a read timeout as ConnectionError(ReadTimeoutError); read1 raises
            # ReadTimeoutError itself.
            wrapped = (
                error.args[0]
                if isinstance(error, requests.ConnectionError) and error.args
                else None
            )
            if isinstance(error, ReadTimeoutError) or isinstance(wrapped, ReadTimeoutError):
                raise UpstreamTimeout(self.timeout) from None
            raise UpstreamUnreachable(BROKE_OFF) from None
        except (requests.RequestException, HTTPError, OSError):
            raise UpstreamUnreachable(BROKE_OFF) from None


def _http_error(response: requests.Response, key: Key) -> UpstreamError:
    if 300 <= response.status_code < 400:
        response.close()
        message = f"Gemini answered with a redirect (HTTP {response.status_code}), not followed"
        return UpstreamError(502, error_body(502, message), str(response.status_code))
    try:
        raw = response.raw.read(MAX_ERROR_BODY, decode_content=True)
    except Exception:  # noqa: BLE001 - a body we cannot read still has its status to report
        raw = b""
    finally:
        response.close()
    body = parse_gemini_error(response.status_code, raw)
    if INVALID_KEY_REASON in error_reasons(body):
        # A bad key is the operator's fault, not the client's: report it as the proxy's own error.
        message = f"Gemini rejected the proxy's API key {key.id} ({INVALID_KEY_REASON})"
        return UpstreamError(
            500,
            error_body(500, message, key=key.id, upstream=body["error"]),
            str(response.status_code),
        )
    return UpstreamError(response.status_code, body, str(response.status_code))
