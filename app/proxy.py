"""The worker's proxy: its settings, key pool and Gemini client, shared by all its requests.

Usage::

    proxy.init_app(app, Proxy(config, KeyPool(config.api_keys, 3600), GeminiClient(...)))
    ...
    get_proxy().pool.counts()  # in any view, as flaskr's views call get_db()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask, current_app

if TYPE_CHECKING:
    from .config import Config
    from .keys import KeyPool
    from .upstream import GeminiClient

EXTENSION = "proxy"


@dataclass(frozen=True)
class Proxy:
    """What every request of one worker shares: made once per worker, after the fork."""

    config: Config
    pool: KeyPool
    client: GeminiClient


def init_app(app: Flask, proxy: Proxy) -> None:
    """Make `proxy` the one `get_proxy()` returns in this app's requests."""
    app.extensions[EXTENSION] = proxy


def get_proxy() -> Proxy:
    return current_app.extensions[EXTENSION]
