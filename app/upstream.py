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
import os
import ssl
import time
from collections.abc import Iterator
from http.cookiejar import DefaultCookiePolicy
from typing import Any, Literal

import gevent
import requests
from gevent.socket import wait
from requests.adapters import HTTPAdapter
from urllib3.exceptions import HTTPError, ReadTimeoutError

from .classify import DISABLING, classify
from .errors import STATUS_NAMES, UpstreamError, error_body, parse_gemini_error
from .keys import Key

STREAM_PATH = "/v1beta/models/{model}:streamGenerateContent?alt=sse"
# How a pool key goes upstream: Gemini's own header, or as a Bearer token on the OpenAI path.
KeyPlace = Literal["x-goog-api-key", "bearer"]
REQUEST_HEADERS = {
    "Content-Type": "application/json",
    # A compressed stream would sit in the decompressor's buffer; ask for plain bytes.
    "Accept-Encoding": "identity",
    "User-Agent": "gemini-chunk-proxy",
}
CONNECT_TIMEOUT = 10.0
# Where requests looks for a CA bundle when it reads the environment itself.
CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
# Gemini's error bodies are a few KB; never buffer an unbounded one from a misbehaving upstream.
MAX_ERROR_BODY = 64 * 1024
# The most bytes one read of an unchunked stream waits for; it returns sooner with what arrived.
READ_SIZE = 64 * 1024
BROKE_OFF = "the Gemini stream broke off"
# Reading a finished stream's tail to reuse its connection is worth a moment, not a stall: past
# either bound the connection is dropped instead.
DRAIN_TIMEOUT = 1.0
DRAIN_BUDGET = 64 * 1024
# The event loop's flag for a watch on a socket's reads (libev's EV_READ).
READ = 1


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
        keepalive: float | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.keepalive = keepalive
        self.session = session or requests.Session()
        # One Session serves every client of the worker: keep no cookies from any answer.
        self.session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        # requests reads the proxy variables and ~/.netrc from the environment on every call;
        # read the proxies once here instead (HTTPS_PROXY still works) and skip the rest.
        self.session.proxies.update(requests.utils.get_environ_proxies(self.base_url))
        self.session.verify = next(
            (os.environ[name] for name in CA_BUNDLE_VARIABLES if os.environ.get(name)), True
        )
        self.session.trust_env = False
        # pool_maxsize bounds the connections kept per host, so it must cover every stream a
        # worker can hold at once (worker_connections) or finished streams' sockets are thrown away.
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)

    def open_stream(
        self, model: str, body: bytes, key: Key, wait: float | None = None
    ) -> UpstreamStream:
        """Start a streamed generation (SSE); return its open stream or raise UpstreamError."""
        return self.open("POST", STREAM_PATH.format(model=model), key, body, wait)

    def open(
        self,
        method: str,
        path: str,
        key: Key,
        body: bytes | None = None,
        wait: float | None = None,
        key_place: KeyPlace = "x-goog-api-key",
    ) -> UpstreamStream:
        """Call any Gemini path (query included) with `key`; return the open 2xx answer.

        The key goes as `x-goog-api-key`, or with `key_place="bearer"` as `Authorization:
        Bearer` (Gemini's OpenAI-compatible API). Raises UpstreamError for any other answer or
        none. `wait`, when shorter than the
        client's timeout, bounds the wait for Gemini's first bytes (a request's deadline
        running out); once bytes flow, the full timeout applies again.
        """
        first_wait = self.timeout if wait is None else max(min(wait, self.timeout), 0.001)
        if key_place == "bearer":
            headers = {**REQUEST_HEADERS, "Authorization": f"Bearer {key.secret}"}
        else:
            headers = {**REQUEST_HEADERS, "x-goog-api-key": key.secret}
        # Prepared here and sent with Session.send: Session.post would merge the session's
        # (empty) headers, params and settings into every call, costing about a tenth of the
        # proxy's CPU per stream for nothing. The Session still pools, and still keeps no cookies.
        prepared = requests.Request(
            method, self.base_url + path, headers=headers, data=body
        ).prepare()
        try:
            response = self.session.send(
                prepared,
                stream=True,
                timeout=(min(CONNECT_TIMEOUT, first_wait), first_wait),
                # A redirect would carry the key to wherever it points.
                allow_redirects=False,
                proxies=self.session.proxies,
                verify=self.session.verify,
            )
        except requests.Timeout as error:
            if isinstance(error, requests.ConnectTimeout):
                raise UpstreamUnreachable("Gemini did not accept the connection in time") from None
            raise UpstreamTimeout(first_wait) from None
        except requests.RequestException as error:
            raise UpstreamUnreachable(f"Gemini is unreachable ({type(error).__name__})") from None
        if not 200 <= response.status_code < 300:
            raise _http_error(response, key)
        return UpstreamStream(response, self.timeout, first_wait, self.keepalive)


class UpstreamStream:
    """An open 2xx stream from Gemini; iterate its bytes, then close it.

    Read in the consumer's own greenlet, and only once the socket has bytes, so a silence is
    noticed without a second greenlet: iter_bytes yields None after every `keepalive` seconds
    without a byte, so the client can be sent a keep-alive meanwhile.
    """

    def __init__(
        self,
        response: requests.Response,
        timeout: float,
        first_wait: float | None = None,
        keepalive: float | None = None,
    ) -> None:
        self.response = response
        self.timeout = timeout
        self.keepalive = keepalive
        self._wait = timeout if first_wait is None else first_wait
        self._ended = self._closed = False
        self._last_read = time.monotonic()
        # chunk_size=None hands over each HTTP chunk as it arrives; iter_lines would hold back
        # the last line until more data came (requests#2433). Unchunked (a relay in front of
        # Gemini), iter_content(None) would read to the end of the body before yielding.
        self._reads = (
            response.iter_content(chunk_size=None)
            if response.raw.chunked
            else _unchunked_reads(response.raw)
        )
        # The event loop's watch on the socket for reads: made at the first wait and kept for
        # every later one, not made and closed around each wait.
        self._watcher: Any = None

    def iter_bytes(self) -> Iterator[bytes | None]:
        """The body as it arrives, None for each silence; raises UpstreamError if it breaks."""
        while not self._ended:
            if not self._readable():
                yield None
                continue
            data = self._next_read()
            if data is None:
                self._ended = True
                return
            yield data

    def close(self, reuse: bool = False) -> None:
        """Release the connection; safe to call more than once.

        With `reuse`, for a stream whose answer is complete, the rest of the body (normally just
        the chunked terminator) is read first, within DRAIN_TIMEOUT and DRAIN_BUDGET, so the
        connection goes back to the pool instead of costing the next request a TCP and TLS
        handshake. A tail that is longer or slower gets the connection dropped.
        """
        if self._closed:
            return
        self._closed = True
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None
        try:
            if reuse and not self._ended:
                self._drain()
        finally:
            # A read cut off mid-body makes urllib3 drop that connection, not pool it.
            self.response.close()

    def _drain(self) -> None:
        read = 0
        with gevent.Timeout(DRAIN_TIMEOUT, False), contextlib.suppress(UpstreamError):
            while read <= DRAIN_BUDGET and (data := self._next_read()) is not None:
                read += len(data)

    def _readable(self) -> bool:
        """Whether a read will find bytes at once: buffered already, or arriving before the
        keep-alive interval is over (False then). Raises UpstreamTimeout once Gemini has sent
        nothing for the read timeout."""
        sock = self._socket()
        if sock is None or self._buffered(sock):
            return True
        silent_until = self._last_read + self._wait
        seconds = silent_until - time.monotonic()
        if self.keepalive is not None:
            seconds = min(seconds, self.keepalive)
        if self._watcher is None:
            self._watcher = gevent.get_hub().loop.io(sock.fileno(), READ)
        try:
            wait(self._watcher, max(seconds, 0.0))
        except TimeoutError:
            if time.monotonic() >= silent_until:
                raise UpstreamTimeout(self._wait) from None
            return False
        return True

    def _socket(self) -> Any:
        """The connection's socket while the body is being read; None once urllib3 let it go
        (the body is complete) or for a body that is not read from a socket."""
        connection = self.response.raw.connection
        return None if connection is None else connection.sock

    def _buffered(self, sock: Any) -> bool:
        """Whether bytes wait in http.client's buffered reader, or in TLS's, or on the socket.

        Checked before waiting for the socket: a read may have taken several events off it at
        once, and those would otherwise sit buffered until the next arrival or keep-alive.
        A peek with the socket's timeout at zero takes what is there without waiting.
        """
        reader = getattr(self.response.raw._fp, "fp", None)
        if reader is None:
            return True  # closed: the next read says how the body ended
        timeout = sock.gettimeout()
        sock.settimeout(0)
        try:
            return bool(reader.peek(1))
        except ssl.SSLWantReadError:  # TLS's "nothing yet"; plain sockets answer b""
            return False
        except OSError:
            return True  # the read reports the failure as the stream breaking off
        finally:
            sock.settimeout(timeout)

    def _next_read(self) -> bytes | None:
        """The next read of the body, None at its end; raises UpstreamError if it breaks."""
        try:
            data = next(self._reads, None)
        except (requests.ConnectionError, ReadTimeoutError) as error:
            # iter_content wraps a read timeout as ConnectionError(ReadTimeoutError); read1 raises
            # ReadTimeoutError itself.
            wrapped = (
                error.args[0]
                if isinstance(error, requests.ConnectionError) and error.args
                else None
            )
            if isinstance(error, ReadTimeoutError) or isinstance(wrapped, ReadTimeoutError):
                raise UpstreamTimeout(self._wait) from None
            raise UpstreamUnreachable(BROKE_OFF) from None
        except (requests.RequestException, HTTPError, OSError):
            raise UpstreamUnreachable(BROKE_OFF) from None
        if data is not None:
            self._last_read = time.monotonic()
            if self._wait < self.timeout:
                self._set_read_timeout(self.timeout)
        return data

    def _set_read_timeout(self, seconds: float) -> None:
        # urllib3 set the socket's timeout when the request was sent; body reads use it too.
        sock = self._socket()
        if sock is not None:
            sock.settimeout(seconds)
        self._wait = seconds


def _unchunked_reads(raw: Any) -> Iterator[bytes]:
    """An unchunked body's reads: read1 returns whatever has arrived."""
    while data := raw.read1(READ_SIZE, decode_content=True):
        yield data


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
    verdict = classify(response.status_code, body, response.headers.get("Retry-After"))
    error = UpstreamError(response.status_code, body, str(response.status_code), verdict)
    return refused_key(error, key) if verdict.kind in DISABLING else error


def refused_key(error: UpstreamError, key: Key) -> UpstreamError:
    """Gemini refusing the proxy's key, restated as the proxy's own 500 naming the key by id.

    A refused key is the operator's fault, not the client's.
    """
    gemini = error.body["error"]
    reason = gemini.get("status") or STATUS_NAMES.get(error.status, "UNKNOWN")
    message = f"Gemini refused the proxy's API key {key.id} ({error.verdict.kind}, {reason})"
    body = error_body(500, message, key=key.id, upstream=gemini)
    return UpstreamError(500, body, error.upstream_status, error.verdict)
