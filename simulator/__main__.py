"""`python -m simulator`: serve the simulator until SIGTERM or SIGINT (see the package docstring).

Usage: python -m simulator --host 127.0.0.1 --port 8090 [--events 12] [--delay 0.25]

It prints one JSON line when it listens (with the port, which --port 0 picks) and one when it
has stopped, so a test or `make demo` can wait for it.
"""

import argparse
import contextlib
import json
import resource
import signal
import sys
from typing import Any

import gevent
from gevent.pywsgi import WSGIServer

import simulator
from simulator.behaviour import (
    DEFAULT_DELAY,
    DEFAULT_EVENTS,
    DEFAULT_WORDS_PER_EVENT,
    Behaviour,
    ConfigError,
    checked_fields,
)
from simulator.server import make_app

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8090
# Benchmarks open thousands of connections at once; the kernel caps this at somaxconn anyway.
LISTEN_BACKLOG = 4096
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def main(argv: list[str] | None = None) -> None:
    """Run the simulator until SIGTERM or SIGINT."""
    args = _parse_args(argv)
    _raise_open_file_limit()
    server = WSGIServer(
        (args.host, args.port),
        make_app(args.behaviour),
        backlog=LISTEN_BACKLOG,
        log=sys.stderr if args.access_log else None,
    )
    server.start()
    # Closing the listener ends serve_forever; open streams die with the process.
    handlers = [gevent.signal_handler(signum, server.close) for signum in STOP_SIGNALS]
    _announce("simulator_listening", host=server.server_host, port=server.server_port)
    server.serve_forever()
    for handler in handlers:
        handler.cancel()
    _announce("simulator_stopped")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m simulator",
        description=simulator.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to bind")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port; 0 picks a free one")
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS, help="answer events")
    parser.add_argument("--delay", type=float, default=DEFAULT_DELAY, help="seconds between events")
    parser.add_argument("--first-delay", type=float, default=0.0, help="seconds before event 1")
    parser.add_argument(
        "--words-per-event", type=int, default=DEFAULT_WORDS_PER_EVENT, help="1 word = 1 token"
    )
    parser.add_argument("--thought-events", type=int, default=0, help="thought events first")
    parser.add_argument(
        "--stamp",
        action="store_true",
        help="add the send time to every event (simSentAt, and @time in the text)",
    )
    parser.add_argument("--access-log", action="store_true", help="log each request to stderr")
    args = parser.parse_args(argv)
    fields = {
        "events": args.events,
        "delay": args.delay,
        "first_delay": args.first_delay,
        "words_per_event": args.words_per_event,
        "thought_events": args.thought_events,
        "stamp": args.stamp,
    }
    try:
        args.behaviour = Behaviour(**checked_fields(fields, "options"))
    except ConfigError as error:
        parser.error(str(error))
    return args


def _raise_open_file_limit() -> None:
    """Lift the soft open-file limit to the hard one, so thousands of streams fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Some systems (macOS) refuse an unlimited soft limit; the default limit still works.
    with contextlib.suppress(ValueError, OSError):
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _announce(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


if __name__ == "__main__":
    main()
