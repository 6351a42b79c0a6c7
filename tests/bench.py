"""`make bench`: what the proxy costs, on loopback against the project's simulator.

Usage: python -m tests.bench [--quick] [--only 1 1b 3]   (writes BENCHMARKS.md, prints the tables)

Not a test: numbers, no assertions. Sections (see issues 5 and 15): cost and throughput against
the simulator-direct baseline, saturation (overload), 5,000 concurrent streams opened in bursts
(scale the machine can carry), chunk delay, and the floors: nginx as a pass-through, and the fixed
stack (gunicorn, Flask, requests) relaying bytes without any of the proxy's work
(tests/floor_app.py); and the proxy's and the bare stack's instructions per stream, counted by
callgrind. Every load comes from an asyncio client (aiohttp) in this process; a server's CPU is
read from /proc for its master and workers before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from simulator import EVENT_END
from tests import client
from tests.redis_server import RedisServer
from tests.servers import KEYS, PASSWORD, REPO_ROOT, ProxyServer, free_port, start_simulator

PROMPT = json.dumps(client.PROMPT).encode()
PROMPT_TOKENS = 4
AUTH = {"Authorization": f"Bearer {PASSWORD}", "Content-Type": "application/json"}
SIM_PATH = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
SIM_AUTH = {"x-goog-api-key": KEYS[0]}
CHUNK_TOKEN = 50
STAMP = re.compile(r"@(\d+\.\d+)\s*$")
# In Gemini's own events, passed on unparsed, each event's text carries its own stamp once.
RAW_STAMP = re.compile(rb"@(\d+\.\d+)")
FLOOR_APP = "tests.floor_app:app"
REPEATS = 3
PROFILE_HEADING = "## Profile"
# Section 4: streams of 4 s whose starts are spread over 2 s, so the 500 run side by side rather
# than all arriving in the same instant (which measures the start-up burst, not chunk delay).
DELAY_EVENTS = 40
DELAY_RAMP = 2.0
RSS_SAMPLE_SECONDS = 0.25
# Section 3: a load these 2 cores can carry (5,000 events/s across the streams), its connections
# opened as a busy front end opens them, BURST at once every BURST_INTERVAL seconds.
SCALE_EVENTS = 20
SCALE_DELAY = 1.0
BURST = 100
BURST_INTERVAL = 0.05
# Section 6: callgrind counts the user-space instructions a worker runs, which the machine's other
# load and its clock hardly move (only the worker's timed chores, a heartbeat and a gauge refresh
# a second, grow with the wall time), where CPU seconds per stream move by 10 to 20% between runs
# of one build. The difference of two loads cancels start-up and warm-up; a few streams at once
# keep the slowed worker (some 50 times) up with the simulator's pace, so its reads are as in
# section 1. The kernel's work (sockets, page faults) is not counted.
IR_STREAMS = (60, 180)
IR_CONCURRENCY = 5
# Boot, gunicorn's worker timeout and shutdown, all some 50 times slower under callgrind.
IR_TIMEOUT = 300.0
IR_SUMMARY = re.compile(r"^summary: (\d+)", re.MULTILINE)
SECTIONS = ("1", "1b", "2", "3", "4", "5", "6")
CLIENT_TIMEOUT = aiohttp.ClientTimeout(total=600)


@dataclass
class Stream:
    """One request as the client saw it."""

    ok: bool = False
    # No answer at all: the connection was refused or reset before a response header came.
    refused: bool = False
    first_byte: float | None = None
    first_chunk: float | None = None
    # (receive time, the bytes) of every read, when asked for.
    reads: list[tuple[float, bytes]] = field(default_factory=list)


# (received, sent) times of what a stream carried: the proxy's chunks or Gemini's own events.
Stamps = Callable[[Stream], Iterator[tuple[float, float]]]


# -- Measuring -----------------------------------------------------------------------------------


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of the processes so far, from /proc."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        status = Path(f"/proc/{pid}/status").read_text()
        total += int(re.search(r"VmRSS:\s+(\d+) kB", status)[1]) * 1024
    return total


def family(pid: int) -> list[int]:
    """A process and its children (gunicorn's master and workers; nginx's master and workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *map(int, children)]


def percentile(values: list[float], share: float) -> float:
    """The value at `share` of the sorted values; NaN for none, so the run goes on."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def machine() -> str:
    model = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    return (
        f"{len(os.sched_getaffinity(0))} cores ({model[1] if model else platform.machine()}), "
        f"Python {platform.python_version()}, Linux {platform.release()}"
    )


# -- The client ----------------------------------------------------------------------------------


async def one(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], keep_reads: bool
) -> Stream:
    """POST the prompt and read the answer as it arrives, noting when bytes and chunks came.

    Reads are only noted while they arrive and parsed after, so the client's own work does not
    delay the next read it times.
    """
    result, started, answered = Stream(), time.perf_counter(), False
    try:
        async with session.post(url, data=PROMPT, headers=headers) as response:
            answered = True
            OpenStreams.now += 1
            OpenStreams.most = max(OpenStreams.most, OpenStreams.now)
            try:
                await read_answer(response, url, keep_reads, result, started)
            finally:
                OpenStreams.now -= 1
            result.ok = response.status == 200
    except (aiohttp.ClientError, TimeoutError) as error:
        result.ok = False
        result.refused = not answered and isinstance(error, aiohttp.ClientConnectionError)
    return result


async def read_answer(
    response: aiohttp.ClientResponse, url: str, keep_reads: bool, result: Stream, started: float
) -> None:
    """Read the body to its end, noting on `result` when the first byte and chunk came."""
    async for data in response.content.iter_any():
        now = time.perf_counter()
        if result.first_byte is None:
            result.first_byte = now - started
        # A chunk's first byte is its `{`, one byte, so it is in a single read: no need to keep
        # the whole body, which grew the client's work with the square of its length.
        if result.first_chunk is None and b"{" in data and url.endswith("/generate"):
            result.first_chunk = now - started
        if keep_reads:
            result.reads.append((now, data))


def chunks_of(stream: Stream) -> list[tuple[float, Any]]:
    """(receive time, element) for every array element of the proxy's answer."""
    chunks: list[tuple[float, Any]] = []
    pending, decoder = b"", json.JSONDecoder()
    for received_at, data in stream.reads:
        pending = take_elements(decoder, pending + data, received_at, chunks)
    return chunks


def take_elements(
    decoder: json.JSONDecoder, buffer: bytes, now: float, chunks: list[tuple[float, Any]]
) -> bytes:
    """Decode every complete array element at the front of `buffer`; return the rest."""
    text = buffer.decode(errors="ignore")
    position = 0
    while True:
        while position < len(text) and text[position] in "[, \n]":
            position += 1
        try:
            element, end = decoder.raw_decode(text, position)
        except ValueError:
            return text[position:].encode()
        chunks.append((now, element))
        position = end


async def load(
    url: str,
    headers: dict[str, str],
    count: int,
    concurrency: int,
    keep_reads: bool = False,
    ramp: float = 0.0,
    burst: int = 1,
) -> tuple[list[Stream], float]:
    """`count` streams, `concurrency` at a time, their starts spread over `ramp` seconds in
    groups of `burst` started together; return them and the wall time taken."""
    gate = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=CLIENT_TIMEOUT) as session:

        async def gated(index: int) -> Stream:
            await asyncio.sleep(ramp * (index - index % burst) / count)
            async with gate:
                return await one(session, url, headers, keep_reads)

        started = time.perf_counter()
        results = await asyncio.gather(*(gated(index) for index in range(count)))
        return results, time.perf_counter() - started


def run_load(*args: Any, **kwargs: Any) -> tuple[list[Stream], float]:
    return asyncio.run(load(*args, **kwargs))


# -- The servers ---------------------------------------------------------------------------------


class Simulator:
    """The project's Gemini simulator with one behaviour for every key."""

    def __init__(self, *options: str) -> None:
        self.process, self.url = start_simulator(*options)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def proxy_for(
    sim: Simulator, app: str = "wsgi:app", **environ: str
) -> tuple[ProxyServer, list[int]]:
    proxy = ProxyServer(
        {
            "GEMINI_API_KEY_LIST": ",".join(KEYS),
            "api_password": PASSWORD,
            "GEMINI_API_BASE": sim.url,
            **environ,
        },
        workers=2,
        app=app,
    ).wait_ready()
    deadline = time.monotonic() + 10
    while len(family(proxy.process.pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    return proxy, family(proxy.process.pid)


# -- Sections ------------------------------------------------------------------------------------


def cost(streams: int, concurrency: int, events: int, delay: float, **environ: str) -> list[str]:
    """Section 1 (events=10, delay=0.05) and, with delay 0, section 2 (saturation)."""
    sim = Simulator("--events", str(events), "--delay", str(delay))
    proxy, pids = proxy_for(sim, **environ)
    rows: dict[str, list[float]] = {}
    try:
        run_load(f"{proxy.url}/generate", AUTH, 100, concurrency)  # warm-up
        for _ in range(REPEATS):
            before = cpu_seconds(pids)
            results, wall = run_load(f"{proxy.url}/generate", AUTH, streams, concurrency)
            used = cpu_seconds(pids) - before
            good = [r for r in results if r.ok]
            rows.setdefault("proxy CPU per stream (ms)", []).append(used / streams * 1000)
            rows.setdefault("proxy requests/s", []).append(len(good) / wall)
            rows.setdefault("proxy TTFB p50 (ms)", []).append(
                percentile([r.first_byte for r in good], 0.5) * 1000
            )
            rows.setdefault("proxy TTFB p99 (ms)", []).append(
                percentile([r.first_byte for r in good], 0.99) * 1000
            )
            rows.setdefault("proxy first chunk p50 (ms)", []).append(
                percentile([r.first_chunk for r in good], 0.5) * 1000
            )
            rows.setdefault("proxy first chunk p99 (ms)", []).append(
                percentile([r.first_chunk for r in good], 0.99) * 1000
            )
            rows.setdefault("failed streams", []).append(streams - len(good))
            direct, wall = run_load(f"{sim.url}{SIM_PATH}", SIM_AUTH, streams, concurrency)
            rows.setdefault("simulator direct requests/s", []).append(
                sum(r.ok for r in direct) / wall
            )
            rows.setdefault("simulator direct TTFB p50 (ms)", []).append(
                percentile([r.first_byte for r in direct if r.ok], 0.5) * 1000
            )
    finally:
        proxy.stop()
        sim.stop()
    return [table_row(name, values) for name, values in rows.items()]


def shared_cost(streams: int, concurrency: int, events: int, delay: float) -> list[str]:
    """Section 1 again with REDIS_URL: the shared key state's cost, on a redis-server of its own."""
    with tempfile.TemporaryDirectory(prefix="gemini-proxy-bench-") as folder:
        server = RedisServer.start(Path(folder))
        try:
            return cost(streams, concurrency, events, delay, REDIS_URL=server.url)
        finally:
            server.stop()


class OpenStreams:
    """Answers the client is reading right now, and the most at once since `reset`."""

    now = 0
    most = 0

    @classmethod
    def reset(cls) -> None:
        cls.most = cls.now


@dataclass
class Scale:
    """What one run of many concurrent long streams showed."""

    complete: int
    # Connections refused or reset before any answer: the listen backlog overflowing.
    refused: int
    wall: float
    idle_rss: int
    peak_rss: int
    cpu: float
    # The most streams open at once: RSS per stream is the growth over these, not over all
    # streams, since a busy proxy may finish the first streams before it has opened the last.
    most_open: int
    # Seconds from the simulator sending an event to the client receiving what carries it.
    delays: list[float]

    @property
    def rss_per_stream(self) -> float:
        """Bytes of RSS growth per stream open at once."""
        return (self.peak_rss - self.idle_rss) / max(self.most_open, 1)


def scale_run(streams: int, app: str, stamps: Stamps) -> Scale:
    """`streams` concurrent streams of SCALE_EVENTS events SCALE_DELAY apart through `app`
    (2 workers), opened BURST at a time; `stamps` reads the delays of one stream."""
    sim = Simulator("--events", str(SCALE_EVENTS), "--delay", str(SCALE_DELAY), "--stamp")
    proxy, pids = proxy_for(sim, app)
    try:
        idle = rss_bytes(pids)
        peak = [idle]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak.append(rss_bytes(family(proxy.process.pid)))
                time.sleep(RSS_SAMPLE_SECONDS)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        before = cpu_seconds(pids)
        OpenStreams.reset()
        ramp = streams / BURST * BURST_INTERVAL
        results, wall = run_load(f"{proxy.url}/generate", AUTH, streams, streams, True, ramp, BURST)
        used = cpu_seconds(pids) - before
        stop.set()
        sampler.join()
    finally:
        proxy.stop()
        sim.stop()
    return Scale(
        complete=sum(r.ok for r in results),
        refused=sum(r.refused for r in results),
        wall=wall,
        idle_rss=idle,
        peak_rss=max(peak),
        cpu=used,
        most_open=OpenStreams.most,
        delays=delays_of(results, stamps),
    )


def scale(streams: int) -> list[str]:
    """Section 3: many concurrent long streams opened in bursts on 2 workers; completions,
    connections refused, memory and delay."""
    run = scale_run(streams, "wsgi:app", chunk_stamps)
    return [
        table_row(f"{streams} concurrent streams: complete", [run.complete]),
        table_row("connections refused or reset before an answer", [run.refused]),
        table_row("streams failed after an answer", [streams - run.complete - run.refused]),
        table_row("wall time (s)", [run.wall]),
        table_row("proxy RSS idle (MB)", [run.idle_rss / 1e6]),
        table_row("proxy RSS peak (MB)", [run.peak_rss / 1e6]),
        table_row("streams open at once, at most", [run.most_open]),
        table_row("RSS per stream open at once (KB)", [run.rss_per_stream / 1e3]),
        table_row("proxy CPU per stream (ms)", [run.cpu / streams * 1000]),
        *delay_rows("chunk delay", streams, run.delays),
    ]


def chunk_delay(streams: int) -> list[str]:
    """Section 4: from the simulator sending the event that completes a chunk to its arrival."""
    sim = Simulator("--events", str(DELAY_EVENTS), "--delay", "0.1", "--stamp")
    proxy, _ = proxy_for(sim)
    try:
        delays = stamp_delays(f"{proxy.url}/generate", AUTH, streams, chunk_stamps)
    finally:
        proxy.stop()
        sim.stop()
    return [
        *delay_rows("chunk delay", streams, delays),
        table_row("chunks measured", [len(delays)]),
    ]


def stamp_delays(
    url: str,
    headers: dict[str, str],
    streams: int,
    stamps: Stamps,
) -> list[float]:
    """Seconds from the simulator stamping an event to the client receiving what carries it,
    over REPEATS loads of `streams` concurrent streams started over DELAY_RAMP."""
    delays: list[float] = []
    for _ in range(REPEATS):
        results, _ = run_load(url, headers, streams, streams, keep_reads=True, ramp=DELAY_RAMP)
        delays += delays_of(results, stamps)
    return delays


def delays_of(results: list[Stream], stamps: Stamps) -> list[float]:
    """Seconds from each stamp's sending to its receipt, over the complete streams."""
    # perf_counter and time.time differ by a constant within this process.
    offset = time.perf_counter() - time.time()
    return [
        received - offset - sent
        for result in results
        if result.ok
        for received, sent in stamps(result)
    ]


def chunk_stamps(stream: Stream) -> Iterator[tuple[float, float]]:
    """(received, sent) for each of the proxy's chunks: sent is the stamp that ends its content,
    that of the event that completed the chunk."""
    for received_at, chunk in chunks_of(stream):
        stamp = STAMP.search(chunk.get("content", ""))
        if stamp:
            yield received_at, float(stamp[1])


def event_stamps(stream: Stream) -> Iterator[tuple[float, float]]:
    """(received, sent) for each of Gemini's own events, passed on unparsed."""
    pending = b""
    for received_at, data in stream.reads:
        *events, pending = (pending + data).split(EVENT_END)
        for event in events:
            for stamp in RAW_STAMP.finditer(event):
                yield received_at, float(stamp[1])


def delay_rows(what: str, streams: int, delays: list[float]) -> list[str]:
    return [
        table_row(
            f"{what} p{share} at {streams} streams (ms)", [percentile(delays, share / 100) * 1000]
        )
        for share in (50, 99)
    ]


def floors(streams: int, concurrency: int, scale_streams: int, delay_streams: int) -> list[str]:
    """Section 5: what no proxy can go below, on this machine and with this rig."""
    rows = [nginx_floor(streams, concurrency)]
    sim = Simulator("--events", "10", "--delay", "0.05")
    floor, pids = proxy_for(sim, FLOOR_APP)
    try:
        used = cpu_per_stream(pids, f"{floor.url}/generate", AUTH, streams, concurrency)
    finally:
        floor.stop()
        sim.stop()
    rows.append(table_row("bare stack: CPU per stream, load as in 1 (ms)", used))
    run = scale_run(scale_streams, FLOOR_APP, event_stamps)
    rows += [
        table_row(
            f"bare stack: RSS per stream at {run.most_open} streams open at once (KB)",
            [run.rss_per_stream / 1e3],
        ),
        table_row("bare stack: CPU per stream, load as in 3 (ms)", [run.cpu / scale_streams * 1e3]),
        table_row("bare stack: streams complete, load as in 3", [run.complete]),
        *delay_rows("bare stack: event delay, load as in 3,", scale_streams, run.delays),
    ]
    sim = Simulator("--events", str(DELAY_EVENTS), "--delay", "0.1", "--stamp")
    floor, _ = proxy_for(sim, FLOOR_APP)
    try:
        stack = stamp_delays(f"{floor.url}/generate", AUTH, delay_streams, event_stamps)
        direct = stamp_delays(f"{sim.url}{SIM_PATH}", SIM_AUTH, delay_streams, event_stamps)
    finally:
        floor.stop()
        sim.stop()
    return [
        *rows,
        *delay_rows("bare stack: event delay", delay_streams, stack),
        *delay_rows("simulator direct: event delay", delay_streams, direct),
        table_row("events measured, bare stack and direct", [len(stack) + len(direct)]),
    ]


def cpu_per_stream(
    pids: list[int], url: str, headers: dict[str, str], streams: int, concurrency: int
) -> list[float]:
    """Milliseconds of the processes' CPU per stream, for each of REPEATS loads after a warm-up."""
    run_load(url, headers, 100, concurrency)
    runs = []
    for _ in range(REPEATS):
        before = cpu_seconds(pids)
        run_load(url, headers, streams, concurrency)
        runs.append((cpu_seconds(pids) - before) / streams * 1000)
    return runs


def nginx_floor(streams: int, concurrency: int) -> str:
    """nginx passing the simulator's stream through, no parsing: its CPU per stream."""
    nginx = shutil.which("nginx", path=os.environ["PATH"] + os.pathsep + "/usr/sbin")
    if nginx is None:
        return table_row("nginx pass-through: not installed (apt-get install nginx)", [])
    sim = Simulator("--events", "10", "--delay", "0.05")
    work = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
    port = free_port()
    host, sim_port = sim.url.removeprefix("http://").split(":")
    (work / "nginx.conf").write_text(
        f"worker_processes 2;\nerror_log {work}/error.log crit;\npid {work}/nginx.pid;\n"
        "events { worker_connections 4096; }\n"
        f"http {{ access_log off; upstream sim {{ server {host}:{sim_port}; keepalive 64; }}\n"
        f"  server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://sim;"
        ' proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; } } }\n'
    )
    process = subprocess.Popen([nginx, "-c", str(work / "nginx.conf"), "-g", "daemon off;"])
    try:
        time.sleep(0.5)
        url = f"http://127.0.0.1:{port}{SIM_PATH}"
        used = cpu_per_stream(family(process.pid), url, SIM_AUTH, streams, concurrency)
    finally:
        process.terminate()
        process.wait(10)
        sim.stop()
        shutil.rmtree(work, ignore_errors=True)
    return table_row("nginx pass-through: CPU per stream, load as in 1 (ms)", used)


def instructions() -> list[str]:
    """Section 6: instructions per stream, the proxy's and the bare stack's, under callgrind."""
    if shutil.which("valgrind") is None:
        return [table_row("callgrind: not installed (apt-get install valgrind)", [])]
    proxy, bare = (instructions_per_stream(app) for app in ("wsgi:app", FLOOR_APP))
    return [
        table_row("proxy: instructions per 10-event stream (millions)", [proxy / 1e6]),
        table_row("bare stack: instructions per 10-event stream (millions)", [bare / 1e6]),
        table_row("proxy against the bare stack (times)", [proxy / bare]),
    ]


def instructions_per_stream(app: str) -> float:
    """Instructions one gevent worker runs per stream of section 1's events, under callgrind."""
    few, many = (worker_instructions(app, streams) for streams in IR_STREAMS)
    return (many - few) / (IR_STREAMS[1] - IR_STREAMS[0])


def worker_instructions(app: str, streams: int) -> int:
    """Instructions callgrind counted for one worker of `app` at its exit, `streams` served
    (what the worker inherited from its master at the fork included: the difference of two loads
    cancels it)."""
    work = Path(tempfile.mkdtemp(prefix="bench-callgrind-"))
    sim = None
    server = None
    try:
        # ProxyServer runs `PYTHON -m gunicorn ...`: this PYTHON runs the same under callgrind.
        python = work / "python"
        out = shlex.quote(f"{work}/out.%p")
        python.write_text(
            f"#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file={out}"
            f' {shlex.quote(sys.executable)} "$@"\n'
        )
        python.chmod(0o755)
        sim = Simulator("--events", "10", "--delay", "0.05")
        server = ProxyServer(
            {
                "GEMINI_API_KEY_LIST": ",".join(KEYS),
                "api_password": PASSWORD,
                "GEMINI_API_BASE": sim.url,
                # Dicts laid out the same in every run; a slowed worker's boot is not a stuck one.
                "PYTHONHASHSEED": "0",
                "GUNICORN_CMD_ARGS": f"--timeout {IR_TIMEOUT:g}",
            },
            workers=1,
            app=app,
            python=str(python),
        )
        server.wait_ready(IR_TIMEOUT)
        workers = family(server.process.pid)[1:]
        results, _ = run_load(f"{server.url}/generate", AUTH, streams, IR_CONCURRENCY)
        if not all(result.ok for result in results):
            raise RuntimeError(f"{app}: a stream failed under callgrind")
        if family(server.process.pid)[1:] != workers:
            raise RuntimeError(f"{app}: the worker was replaced during the load")
        server.stop(IR_TIMEOUT)
        # Written by callgrind as the worker exits.
        summary = IR_SUMMARY.search((work / f"out.{workers[0]}").read_text())
        if summary is None:
            raise RuntimeError(f"{app}: callgrind wrote no instruction count")
        return int(summary[1])
    finally:
        if server is not None:
            server.stop(IR_TIMEOUT)
        if sim is not None:
            sim.stop()
        shutil.rmtree(work, ignore_errors=True)


# -- Report --------------------------------------------------------------------------------------


def table_row(name: str, values: list[float]) -> str:
    if not values:
        return f"| {name} | | |"
    median = statistics.median(values)
    spread = f"{min(values):.2f} to {max(values):.2f}" if len(values) > 1 else ""
    return f"| {name} | {median:.2f} | {spread} |"


def section(title: str, rows: list[str]) -> str:
    return "\n".join(
        [f"### {title}", "", "| measure | median | range |", "|---|---|---|", *rows, ""]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller loads, for a quick look")
    parser.add_argument("--output", default=str(REPO_ROOT / "BENCHMARKS.md"))
    parser.add_argument(
        "--only",
        nargs="+",
        choices=SECTIONS,
        default=list(SECTIONS),
        metavar="N",
        help=f"run only these sections ({', '.join(SECTIONS)}), e.g. --only 1 3 --output /tmp/b.md",
    )
    args = parser.parse_args(argv)
    # 5,000 streams need as many client sockets; the soft limit is often 1024.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    scale_streams = 500 if args.quick else 5000
    delay_streams = 100 if args.quick else 500
    parts: dict[str, tuple[str, Callable[[], list[str]]]] = {
        "1": ("Cost and throughput: 600 streams at 50 concurrent, 10 events 50 ms apart",
         lambda: cost(600, 50, 10, 0.05)),
        "1b": ("Section 1's load with REDIS_URL (key state shared through a local redis-server)",
         lambda: shared_cost(600, 50, 10, 0.05)),
        "2": ("Saturation: 20-event streams, no delay, 100 concurrent",
         lambda: cost(600, 100, 20, 0.0)),
        "3": (f"Scale: {scale_streams} concurrent streams of {SCALE_EVENTS} events"
         f" {SCALE_DELAY:g} s apart, opened {BURST} every {BURST_INTERVAL * 1000:g} ms, 2 workers",
         lambda: scale(scale_streams)),
        "4": (f"Chunk delay: {delay_streams} concurrent streams, 40 events 100 ms apart, over 2 s",
         lambda: chunk_delay(delay_streams)),
        "5": ("Floors: nginx as a pass-through, the bare stack (tests/floor_app.py), the rig"
         " itself",
         lambda: floors(600, 50, scale_streams, delay_streams)),
        "6": (f"User-space instructions per stream under callgrind: 1 worker, section 1's streams"
         f" {IR_CONCURRENCY} at a time (the count at {IR_STREAMS[1]} streams less that at"
         f" {IR_STREAMS[0]}, per stream)",
         instructions),
    }  # fmt: skip
    report = [
        "# Benchmarks",
        "",
        f"`make bench` on {machine()}; {time.strftime('%Y-%m-%d')}. Medians of {REPEATS} runs,"
        " with their range (section 6: one count each); loopback only, the simulator and the"
        " client on the same 2 cores.",
        "",
    ]
    for number, (title, measure) in parts.items():
        if number not in args.only:
            continue
        print(f"running: {number}. {title}", file=sys.stderr, flush=True)
        report.append(section(f"{number}. {title}", measure()))
    text = "\n".join(report)
    print(text)
    output = Path(args.output)
    # The profile notes below the tables are written by hand; a new run keeps them.
    kept = output.read_text().partition(PROFILE_HEADING)[1:] if output.exists() else ("", "")
    output.write_text(text + ("\n" + "".join(kept) if kept[0] else ""))


if __name__ == "__main__":
    main()
