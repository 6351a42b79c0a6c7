"""gunicorn settings for gemini-chunk-proxy: `gunicorn -c gunicorn.conf.py wsgi:app`.

The master imports this file before gevent patches anything, so it imports only the standard
library and gunicorn's own modules (which the master loads before forking anyway): never app code,
requests or urllib3 (an early ssl/socket import breaks gevent's patching).
Values can be overridden on the command line (`-b`, `-w`, ...) as gunicorn does, except the
number of streams per worker: set WORKER_CONNECTIONS, which the app's connection pool follows too.
"""

import contextlib
import json
import logging
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import urllib.parse

# gunicorn's own logger, which the master loads anyway to build its logger: it imports only the
# standard library, so it is safe before gevent patches.
from gunicorn import glogging


def _env_int(name, default):
    """The variable as a positive int, else `default`: on_starting's check reports bad values."""
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else default


# -- Server socket ---------------------------------------------------------------------------
bind = [f"0.0.0.0:{_env_int('PORT', 1231)}"]

# -- Worker processes ------------------------------------------------------------------------
# Streams spend their life waiting on Gemini, so each worker is one process of cooperative
# greenlets; a process per CPU uses the cores for JSON and chunking work.
# The CPUs this process may run on (a container's cpuset), not every CPU of the host.
workers = _env_int("WEB_CONCURRENCY", len(os.sched_getaffinity(0)))
worker_class = "gevent"
# The most streams one worker holds at once; the app sizes its upstream connection pool from the
# same variable, so the two always agree.
worker_connections = _env_int("WORKER_CONNECTIONS", 4096)
# gevent records where every greenlet was spawned (ten frames of stack) for debugging tools; with
# a greenlet per connection and per Gemini call that costs CPU and memory on every request.
# Workers inherit the variable and gevent reads it when the first greenlet is made.
os.environ.setdefault("GEVENT_TRACK_GREENLET_TREE", "0")

# -- Listen backlog --------------------------------------------------------------------------
# Connections the kernel queues before a worker accepts them. A burst (a front end opening
# hundreds a second) must fit, or the kernel resets the overflow before gunicorn or the app can
# see or log it; the workers can hold workers x worker_connections, so the queue follows that.
# The kernel caps any listen() backlog at net.core.somaxconn (README: Deploy).
SOMAXCONN_PATH = "/proc/sys/net/core/somaxconn"
# What the kernel defaults to (Linux 5.4+) when the file cannot be read.
DEFAULT_SOMAXCONN = 4096


def somaxconn(path=SOMAXCONN_PATH):
    """The kernel's cap on a listen backlog, or DEFAULT_SOMAXCONN when it cannot be read."""
    try:
        with open(path, encoding="ascii") as file:
            return int(file.read().strip())
    except (OSError, ValueError):
        return DEFAULT_SOMAXCONN


def listen_backlog(worker_count, connections, cap):
    """The connections `worker_count` workers of `connections` each can hold, at most `cap`."""
    return min(worker_count * connections, cap)


backlog = listen_backlog(workers, worker_connections, somaxconn())
# gevent workers heartbeat from their own greenlet, so a long stream never trips this timeout.
timeout = 30
# On SIGTERM, streams in flight get this long to finish before workers are killed.
graceful_timeout = 120
# Idle keep-alive connections are held this long. On SIGTERM gunicorn also waits for idle ones
# (a client may be about to reuse one), so this bounds how long they delay a shutdown; nginx's
# upstream keepalive_timeout must stay below it so nginx never reuses a connection being closed.
keepalive = 5
# Never preload: the app, its Session and prometheus_client must be imported after the fork.
preload_app = False

# -- Control ---------------------------------------------------------------------------------
# gunicorn's control socket defaults to one path per user ($HOME/.gunicorn/gunicorn.ctl), which
# two instances on a host would fight over and a read-only root filesystem cannot hold.
control_socket_disable = True


# -- Logging: one JSON object per line on stdout, secrets blanked ----------------------------
# app.config refuses a secret file larger than this, so no more of one is read here.
MAX_SECRET_FILE_BYTES = 1024 * 1024


def _secret(name):
    """The variable, or the file its NAME_FILE variable names, as app.config reads them.

    A file that cannot be read gives "": the check in on_starting then stops the start with one
    line naming the variable, before any request is served.
    """
    path = os.environ.get(f"{name}_FILE", "").strip()
    if not path:
        return os.environ.get(name, "")
    try:
        with open(path, encoding="utf-8") as file:
            return file.read(MAX_SECRET_FILE_BYTES)
    except (OSError, ValueError):
        return ""


class RedactSecrets(logging.Filter):
    """Blank the password and API keys out of every line, whoever wrote it.

    gunicorn itself logs raw request lines (an invalid one, `?password=` and all) and the URI of
    a request that failed; the app never logs a secret, but this filter does not rely on that.
    """

    # `?password=` and `?key=` query values (the native routes take the password as `key`), and
    # anything shaped like a Google API key ("AIza" + 35).
    PATTERN = re.compile(
        r"(?<=[?&]password=)[^&\s'\"]+|(?<=[?&]key=)[^&\s'\"]+|AIza[0-9A-Za-z_-]{35}",
        re.IGNORECASE,
    )
    REPLACEMENT = "[REDACTED]"

    def __init__(self):
        super().__init__()
        keys = re.split(r"[,\n]", _secret("GEMINI_API_KEY_LIST"))
        password = _secret("api_password").rstrip("\r\n")
        # REDIS_URL may carry Redis' password (redis://:password@host); the whole URL goes too.
        redis_url = _secret("REDIS_URL").strip()
        redis_password = urllib.parse.urlsplit(redis_url).password if redis_url else None
        secrets = (*map(str.strip, keys), password, redis_url, redis_password)
        self.secrets = [s for s in secrets if s]

    # What every record has; anything else is an `extra` field the JSON line writes out.
    STANDARD_FIELDS = frozenset(vars(logging.makeLogRecord({})))

    def filter(self, record):
        message = self.clean(record.getMessage())
        record.msg, record.args = message, None
        for name, value in list(vars(record).items()):
            if name not in self.STANDARD_FIELDS:
                setattr(record, name, self.clean_value(value))
        if record.exc_info:
            record.exc_text = self.clean(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True

    def clean(self, text):
        """`text` with every secret and secret-shaped string replaced."""
        for secret in self.secrets:
            text = text.replace(secret, self.REPLACEMENT)
        return self.PATTERN.sub(self.REPLACEMENT, text)

    def clean_value(self, value):
        """An `extra` field's value cleaned: its strings, also inside lists and dicts."""
        if isinstance(value, str):
            return self.clean(value)
        if isinstance(value, list | tuple):
            return [self.clean_value(item) for item in value]
        if isinstance(value, dict):
            return {self.clean_value(k): self.clean_value(v) for k, v in value.items()}
        return value


# gunicorn's access line is off unless ACCESS_LOG=1: the app already writes one JSON line per
# request holding all it would say (path, status, duration, request id) and more, and building a
# second line cost some 5% of the proxy's CPU per stream (BENCHMARKS.md, Profile). The pre-start
# check (app.config's main) refuses values other than 0 and 1.
ACCESS_LOG = os.environ.get("ACCESS_LOG", "").strip() == "1"


class ProxyLogger(glogging.Logger):
    """gunicorn's logger, writing the access line only when ACCESS_LOG=1."""

    # gunicorn asks this before it builds the line's fields, and access() asks it again.
    @property
    def access_log_enabled(self):
        return ACCESS_LOG and super().access_log_enabled


logger_class = ProxyLogger
# %(U)s is the path alone; the request-line and query-string atoms (r, q) would print
# `?password=` too.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms %({x-request-id}o)s'
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": RedactSecrets}},
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["redact"],
            "stream": "ext://sys.stdout",
        }
    },
    "root": {"level": "INFO", "handlers": ["stdout"]},
    "loggers": {
        # Both propagate to the root's JSON handler only, so no line is written twice.
        "gunicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
        "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": True},
    },
}

# -- Prometheus multiprocess metrics ---------------------------------------------------------
# Workers inherit this environment and import prometheus_client only after the fork, so every
# worker writes its values to files here and /metrics sums them. A folder made here is removed
# on exit; one the operator named (a tmpfs in Docker) is only emptied at start.
made_metrics_dir = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR",
    os.path.join(tempfile.gettempdir(), f"gemini-proxy-metrics-{os.getpid()}"),
)

# `-c`, not `-m app.config`: the app package imports app.config itself, and running a module of
# a package that imported it already makes Python warn (a line that is not JSON) and run it twice.
CHECK_SETTINGS = "import sys; from app.config import main; sys.exit(main())"


def on_starting(server):
    """Refuse to start on a bad setting; warn of a listen backlog short of the workers' room;
    empty the metrics directory of an earlier run; lift the open-file limit, which the workers
    inherit."""
    # Each stream holds two sockets (client and Gemini): 4096 streams a worker need some 8200
    # descriptors, far above the usual soft limit of 1024. The hard limit is the operator's.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        # An unlimited hard limit cannot be a soft one (the kernel caps it): keep the soft then.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # The settings are checked in a child interpreter: the master must not import app code, and
    # a worker failing on them would stop gunicorn with its own traceback instead of one line.
    # The child imports the whole app package, metrics too: without the metrics folder (not made
    # yet on a first start) prometheus_client keeps the child's values in memory, not in files.
    environ = {
        name: value for name, value in os.environ.items() if name != "PROMETHEUS_MULTIPROC_DIR"
    }
    check = subprocess.run(
        [sys.executable, "-c", CHECK_SETTINGS], cwd=os.path.dirname(__file__), env=environ
    )
    if check.returncode:
        sys.exit(check.returncode)
    # The server's settings, so a -w or --backlog flag given on the command line is judged too.
    wanted = server.cfg.workers * server.cfg.worker_connections
    if server.cfg.backlog < wanted:
        server.log.warning(
            "listen backlog %d is below the %d connections the workers can hold "
            "(net.core.somaxconn is %d): a burst of new connections beyond it is reset by the "
            "kernel; raise net.core.somaxconn (README: Deploy)",
            server.cfg.backlog,
            wanted,
            somaxconn(),
        )
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def on_exit(server):
    """Remove the metrics folder this file made; leave an operator's own in place."""
    if made_metrics_dir:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


def child_exit(server, worker):
    """Drop a dead worker's live gauges; its counters stay, so a restart loses no counts."""
    from prometheus_client import multiprocess  # in the hook: the master needs it only here

    multiprocess.mark_process_dead(worker.pid)


# -- gunicorn's own error answers ------------------------------------------------------------
# For a request it cannot parse (bad request line, header or chunking) gunicorn answers before
# the app runs, with an HTML page quoting what was sent: a request line with ?password=, a key.
# The workers answer these as the app does instead: JSON in Gemini's shape, quoting nothing.
# Its log line keeps the detail, scrubbed by RedactSecrets.
GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    414: "INVALID_ARGUMENT",
    417: "FAILED_PRECONDITION",
    431: "INVALID_ARGUMENT",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
}


def write_json_error(sock, status_int, reason, mesg):
    """Stand-in for gunicorn.util.write_error: the error as JSON, without echoing the request."""
    status = GOOGLE_STATUS.get(status_int, "UNKNOWN")
    message = f"{reason}: the request is not valid HTTP; see the proxy's log"
    body = json.dumps({"error": {"code": status_int, "status": status, "message": message}})
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall((head + body).encode("latin-1"))


def post_worker_init(worker):
    """Install write_json_error in the worker, where gunicorn's request handling runs."""
    from gunicorn import util  # gunicorn's own module: safe in the worker, after its patching

    util.write_error = write_json_error
