"""HTTP helpers the integration tests share: calling the proxy and reading what it and Gemini saw.

Usage::

    response = generate(proxy, headers={"X-Request-ID": "r1"})
    assert_json_error(response, 429)
    metric(proxy, "gemini_proxy_requests_total", route="generate", status="429")
"""

from __future__ import annotations

import json
import re
import socket
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from tests.servers import KEYS, PASSWORD, REQUEST_TIMEOUT, ProxyServer, control

PROMPT = {"contents": [{"role": "user", "parts": [{"text": "Tell me a story"}]}]}
KEY_IDS = {secret: f"k{number}" for number, secret in enumerate(KEYS, 1)}


def generate(
    proxy: ProxyServer,
    body: Any = PROMPT,
    password: str | None = PASSWORD,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    stream: bool = False,
    timeout: float = REQUEST_TIMEOUT,
) -> requests.Response:
    """POST /generate with the password in the Authorization header (unless told otherwise)."""
    # One connection per request: a kept-alive one left open by a finished test would hold
    # gunicorn's graceful shutdown for its keepalive seconds.
    all_headers = {"Content-Type": "application/json", "Connection": "close", **(headers or {})}
    if password is not None:
        all_headers.setdefault("Authorization", f"Bearer {password}")
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(
        f"{proxy.url}/generate",
        data=data,
        params=params,
        headers=all_headers,
        stream=stream,
        timeout=timeout,
    )


def raw_exchange(proxy: ProxyServer, request_bytes: bytes) -> tuple[int, bytes]:
    """Send bytes as they are on a new connection; return the status and the body read."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=REQUEST_TIMEOUT) as sock:
        sock.sendall(request_bytes)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def generate_many(proxy: ProxyServer, tag: str, count: int, threads: int = 8) -> list[int]:
    """Send `count` requests concurrently, each with its own X-Request-ID; return the statuses."""

    def one(index: int) -> int:
        response = generate(proxy, headers={"X-Request-ID": f"{tag}-{index}"})
        response.content  # noqa: B018 - read the stream to its end
        return response.status_code

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(one, range(count)))


def upstream_calls(sim: str) -> list[dict[str, Any]]:
    """Every call the simulator received since its log was last cleared."""
    return control(sim, "requests")["requests"]


def clear_upstream_calls(sim: str) -> None:
    """Empty the simulator's log of calls, so what follows counts only what comes after."""
    requests.delete(f"{sim}/_sim/requests", timeout=REQUEST_TIMEOUT).raise_for_status()


def calls_per_key(sim: str) -> Counter[str]:
    """How often the simulator was called with each test key, by the key's id (k1, k2, k3)."""
    return Counter(KEY_IDS[call["key"]] for call in upstream_calls(sim))


def assert_json_error(response: requests.Response, code: int) -> dict[str, Any]:
    """The response is `code` with a Gemini-shaped JSON error; return its `error` object."""
    assert response.status_code == code, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert error["status"] and error["message"]
    return error


def metric(proxy: ProxyServer, name: str, **labels: str) -> float:
    """One sample's value from a scrape of /metrics (0 when absent)."""
    text = requests.get(f"{proxy.url}/metrics", timeout=REQUEST_TIMEOUT).text
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = "^" + re.escape(name + (f"{{{wanted}}}" if labels else "")) + r" (\S+)$"
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def cooldowns(proxy: ProxyServer) -> dict[tuple[str, str], float]:
    """Every gemini_proxy_key_cooldowns_total sample, by (key, reason)."""
    text = requests.get(f"{proxy.url}/metrics", timeout=REQUEST_TIMEOUT).text
    pattern = r'^gemini_proxy_key_cooldowns_total\{key="(\w+)",reason="(\w+)"\} (\S+)$'
    return {
        (key, reason): float(value)
        for key, reason, value in re.findall(pattern, text, re.MULTILINE)
    }


def upstream_count(proxy: ProxyServer, status: str) -> float:
    """Calls to Gemini with this status label, over all keys."""
    return sum(
        metric(proxy, "gemini_proxy_upstream_requests_total", key=key, status=status)
        for key in ("k1", "k2", "k3")
    )


def request_lines(proxy: ProxyServer, request_ids: set[str]) -> list[dict[str, Any]]:
    """The per-request log lines of the given request ids."""
    return [
        line
        for line in proxy.log_lines()
        if line.get("message") == "request" and line.get("request_id") in request_ids
    ]


def served_by(proxy: ProxyServer, request_ids: set[str]) -> set[int]:
    """The worker pids that logged the given requests."""
    return {line["process"] for line in request_lines(proxy, request_ids)}


def parse(name: str, raw: bytes) -> list[dict[str, Any]]:
    """The body's elements, read the way a client of that format reads them."""
    if name == "json":
        return json.loads(raw)
    if name == "ndjson":
        return [json.loads(line) for line in raw.decode().split("\n") if line]
    elements = []
    for block in raw.decode().split("\n\n"):
        data = [line[6:] for line in block.split("\n") if line.startswith("data: ")]
        if data:
            element = json.loads("\n".join(data))
            if block.startswith("event: error"):
                element["event"] = "error"
            elements.append(element)
    return elements
