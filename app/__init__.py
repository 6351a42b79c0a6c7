"""gemini-chunk-proxy: Gemini's streamGenerateContent re-sent as cumulative token-count chunks.

Usage::

    app = create_app(Config.from_env(os.environ))
"""

from __future__ import annotations

import os

from flask import Flask

from . import errors, logs, metrics, native, openai, proxy, routes
from .config import Config
from .keys import KeyPool
from .logs import LOGGER
from .shared import SharedKeyState, follow, redis_client
from .upstream import GeminiClient

# Bodies above this get 413 before they are read; Gemini's own inline-request limit is 20 MB.
MAX_BODY_BYTES = 20 * 1024 * 1024


def create_app(config: Config | None = None) -> Flask:
    """Build the WSGI app for one worker; reads the environment when no config is given."""
    config = config or Config.from_env(os.environ)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    client = GeminiClient(
        config.api_base,
        config.upstream_timeout,
        config.worker_connections,
        keepalive=config.keepalive_seconds,
    )
    # Made here, in the worker after the fork: a socket opened in the master would be shared.
    shared = None if config.redis_url is None else SharedKeyState(redis_client(config.redis_url))
    pool = KeyPool(config.api_keys, disable_seconds=config.key_disable_seconds, shared=shared)
    proxy.init_app(app, proxy.Proxy(config, pool, client))
    logs.init_app(app)
    errors.init_app(app)
    app.register_blueprint(routes.bp)
    app.register_blueprint(native.bp)
    app.register_blueprint(openai.bp)
    metrics.watch_keys(pool, config.model_id)
    if shared is not None:
        follow(pool.refresh)
    LOGGER.info(
        "worker ready",
        extra={
            "model": config.model_id,
            "keys": len(config.api_keys),
            "chunk_token": config.chunk_token,
            "key_state": "in-process" if shared is None else "shared",
        },
    )
    if config.password_is_default:
        LOGGER.warning("api_password is left at its published default: set api_password")
    return app
