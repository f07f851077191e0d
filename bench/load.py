"""The proxy benchmark's load generator: one process, asyncio, HTTP/1.1 over TCP and TLS.

wrk cannot speak through a proxy's CONNECT, so every target (nginx directly, and each proxy) is driven
by this same client, whose own cost is therefore the same for all of them. It runs as a child of
bench/proxies.py (`python -m bench.load`), reads one JSON job a line on stdin and answers with one
JSON result a line on stdout:

job:    {"proxy": [host, port] | null, "scheme": "http" | "https", "connections": N,
         "visits": [[host, [path, ...]], ...], "reuse": bool, "duration": s, "warmup": s,
         "origin_cert": PEM path, "start": the first visit}
result: {"counted": requests completed inside the window, "window": s, "total": all completed,
         "status": {"200": n, ...}, "errors": {"ConnectionResetError": n, ...}, "connections": n,
         "tls": n of them over TLS,
         "decrypted": TLS connections whose certificate was not the origin's (a proxy decrypted them)}

A connection serves one visit: it opens (CONNECT and TLS through a proxy for https), sends the
visit's paths one after another on the same connection, then closes and takes the next visit; with
`reuse` it stays open for the whole job, cycling its visit's paths (keep-alive). A visit of one path
without reuse is a new connection per request. Requests are counted when they complete after the
warm-up and before the deadline (the window); a proxy's refusal at the CONNECT or the TLS handshake
counts as an answer, under the status "CONNECT 403" or "TLS refused". At the deadline each connection
finishes the request it is on and closes. Everything is bounded by the job's duration plus a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

GRACE = 10.0  # seconds a connection may take to finish its last request after the deadline
LIMIT = 1 << 20  # the stream reader's line limit; headers are small, bodies are read by length
PORTS = {"http": 80, "https": 443}


@dataclass
class Job:
    proxy: tuple[str, int] | None
    scheme: str
    connections: int
    visits: list[tuple[str, list[str]]]
    reuse: bool
    duration: float
    warmup: float
    origin_cert: str
    start: int = 0  # the first visit: rounds start at different places in a long mix, all targets alike


@dataclass
class Tally:
    start: float
    window_start: float
    deadline: float
    counted: int = 0
    total: int = 0
    connections: int = 0
    tls: int = 0
    decrypted: int = 0
    next_visit: int = 0
    status: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


class HTTPError(Exception):
    """The other side said something this client does not understand."""


class Refused(Exception):
    """A proxy refused the connection after CONNECT (a status other than 200) or at the TLS handshake.

    That is an answer, as a block page is (selective interception may refuse a blocked host at the
    handshake): counted as a completed request under its own status, not as an error.
    """


def request_bytes(host: str, path: str, absolute: bool, close: bool) -> bytes:
    """One GET: absolute-form to a proxy for plain HTTP, origin-form otherwise."""
    target = f"http://{host}{path}" if absolute else path
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}", "User-Agent: klaswacht-bench/1", "Accept: */*"]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response whole; return its status and whether the server closes the connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise HTTPError(f"bad status line {lines[0][:80]!r}")
    status = int(parts[1])
    length: int | None = None
    chunked = False
    close = parts[0] == b"HTTP/1.0"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        value = value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value
        elif name == b"connection":
            if b"close" in value:
                close = True
            elif b"keep-alive" in value:
                close = False
    if status in (204, 304) or 100 <= status < 200:
        return status, close
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length is not None:
        await reader.readexactly(length)
    else:
        await reader.read()  # until the server closes
        close = True
    return status, close


async def open_connection(job: Job, host: str, context: ssl.SSLContext, origin_der: bytes,
                          tally: Tally) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    port = PORTS[job.scheme]
    if job.proxy is None:  # straight to the origin: every name resolves to loopback in the benchmark
        if job.scheme == "https":
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=host,
                                                           limit=LIMIT)
        else:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=LIMIT)
    else:
        reader, writer = await asyncio.open_connection(*job.proxy, limit=LIMIT)
        if job.scheme == "https":
            writer.write(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            code = head.split(None, 2)[1:2]
            if code != [b"200"]:
                writer.close()
                raise Refused(f"CONNECT {(code or [b'?'])[0].decode(errors='replace')}")
            try:
                await writer.start_tls(context, server_hostname=host)
            except (OSError, EOFError, ssl.SSLError) as e:
                writer.close()
                raise Refused("TLS refused") from e
    tally.connections += 1
    if job.scheme == "https":
        tally.tls += 1
        ssl_object = writer.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.getpeercert(True) != origin_der:
            tally.decrypted += 1
    return reader, writer


async def connection_loop(job: Job, index: int, context: ssl.SSLContext, origin_der: bytes, tally: Tally) -> None:
    absolute = job.proxy is not None and job.scheme == "http"
    while time.monotonic() < tally.deadline:
        if job.reuse:
            host, paths = job.visits[(job.start + index) % len(job.visits)]
        else:
            host, paths = job.visits[tally.next_visit % len(job.visits)]
            tally.next_visit += 1
        writer: asyncio.StreamWriter | None = None
        try:
            reader, writer = await open_connection(job, host, context, origin_der, tally)
            sent = 0
            while time.monotonic() < tally.deadline:
                path = paths[sent % len(paths)]
                sent += 1
                last = not job.reuse and sent == len(paths)
                writer.write(request_bytes(host, path, absolute, last))
                status, close = await read_response(reader)
                now = time.monotonic()
                tally.total += 1
                tally.status[str(status)] += 1
                if tally.window_start <= now < tally.deadline:
                    tally.counted += 1
                if last or close:
                    break
        except Refused as e:  # the proxy's answer to a blocked host, at the CONNECT or the handshake
            tally.total += 1
            tally.status[str(e)] += 1
            if tally.window_start <= time.monotonic() < tally.deadline:
                tally.counted += 1
        except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError,
                HTTPError, ValueError) as e:
            tally.errors[type(e).__name__] += 1
            await asyncio.sleep(0.01)  # a refusing target must not turn this loop into a busy spin
        finally:
            if writer is not None:
                await close_connection(writer)


async def close_connection(writer: asyncio.StreamWriter) -> None:
    """Close without waiting for the other side's TLS close_notify, as browsers do.

    Waiting for it would let a target that is slow to close a tunnel (e2guardian keeps the client side
    open after the origin closed) hold each connection for asyncio's 30 s TLS shutdown timeout.
    """
    if writer.get_extra_info("ssl_object") is not None:
        writer.transport.abort()
        return
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


def client_context() -> ssl.SSLContext:
    """TLS as a browser would speak it, without verification (the same cost for every target)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    return context


async def run_job(job: Job) -> dict[str, Any]:
    with open(job.origin_cert, encoding="ascii") as f:
        origin_der = ssl.PEM_cert_to_DER_cert(f.read())
    context = client_context()
    start = time.monotonic()
    tally = Tally(start, start + job.warmup, start + job.duration, next_visit=job.start)
    tasks = [asyncio.create_task(connection_loop(job, i, context, origin_der, tally)) for i in range(job.connections)]
    done, pending = await asyncio.wait(tasks, timeout=job.duration + GRACE)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        if task.exception() is not None:
            tally.errors[type(task.exception()).__name__] += 1
    if pending:
        tally.errors["cancelled-after-grace"] += len(pending)
    return {"counted": tally.counted, "window": job.duration - job.warmup, "total": tally.total,
            "elapsed": time.monotonic() - start, "status": dict(tally.status), "errors": dict(tally.errors),
            "connections": tally.connections, "tls": tally.tls, "decrypted": tally.decrypted}


def parse_job(line: str) -> Job:
    raw = json.loads(line)
    proxy = raw.get("proxy")
    return Job(proxy=(str(proxy[0]), int(proxy[1])) if proxy else None, scheme=raw["scheme"],
               connections=int(raw["connections"]), visits=[(h, list(p)) for h, p in raw["visits"]],
               reuse=bool(raw["reuse"]), duration=float(raw["duration"]), warmup=float(raw["warmup"]),
               origin_cert=raw["origin_cert"], start=int(raw.get("start", 0)))


def main() -> int:
    for line in sys.stdin:
        if not line.strip():
            continue
        result = asyncio.run(run_job(parse_job(line)))
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
