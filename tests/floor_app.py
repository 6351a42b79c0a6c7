"""The stack's own floor for `make bench`: gunicorn + Flask + requests relaying Gemini's bytes.

Usage: gunicorn -c gunicorn.conf.py tests.floor_app:app  (GEMINI_API_BASE, GEMINI_API_KEY_LIST)

Not the proxy: no password, validation, keys, failover, SSE parsing, chunking, logging or metrics.
Each request is sent on to the simulator and its bytes are passed back as they come, with the
leanest use of the fixed stack (a prepared request on one pooled Session, reads of whole HTTP
chunks). What this costs, no proxy built on that stack can go below.
"""

from __future__ import annotations

import os

import requests
from flask import Flask, Response, request
from requests.adapters import HTTPAdapter

PATH = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
POOL_SIZE = 4096
# (connect, read) seconds, as the proxy's own calls have them: a stalled simulator fails the run.
TIMEOUT = (10.0, 300.0)

app = Flask(__name__)
session = requests.Session()
session.trust_env = False
session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=POOL_SIZE, max_retries=0))
upstream_url = os.environ["GEMINI_API_BASE"].rstrip("/") + PATH
headers = {
    "Content-Type": "application/json",
    "x-goog-api-key": os.environ["GEMINI_API_KEY_LIST"].split(",")[0].strip(),
}


@app.post("/generate")
def generate() -> Response:
    """Gemini's stream, byte for byte."""
    prepared = requests.Request("POST", upstream_url, headers=headers, data=request.data).prepare()
    upstream = session.send(prepared, stream=True, timeout=TIMEOUT)
    response = Response(upstream.iter_content(chunk_size=None), mimetype="text/event-stream")
    response.call_on_close(upstream.close)
    return response


@app.get("/health")
def health() -> dict[str, str]:
    """Up."""
    return {"status": "ok"}
