"""`klaswacht run --workers N`: N real proxy processes on one port (SO_REUSEPORT), their metrics summed on the one
metrics address, a worker that dies started again while the others serve, and every worker's events flushed at stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from proxy_helpers import KLASWACHT, Running, fetch, fetch_from, klaswacht, metric, start, stopped_after, until

from klaswacht.run import worker_environment
from proxy.reuseport import ReusePortLoop

BLOCKED = "http://www.google.com/search?q=kankerjuf"
PUPIL = "127.0.0.41"


def children(running: Running, module: bytes) -> Iterator[tuple[int, list[bytes]]]:
    """(pid, argv) of the live processes `klaswacht run` started as `python -m module`, read from /proc."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")  # empty for a process that has ended
        except OSError:  # gone meanwhile
            continue
        if int(stat.rpartition(")")[2].split()[1]) == running.process.pid and module in argv:
            yield int(entry.name), argv


def workers_of(running: Running) -> dict[int, int]:
    """{worker number: pid} of the run's live proxy workers."""
    return {int(argv[argv.index(b"--worker") + 1]): pid for pid, argv in children(running, b"proxy.worker")}


def connections(running: Running) -> list[float]:
    return [metric(running, f'klaswacht_worker_connections_total{{worker="{n}"}}') for n in range(2)]


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """Two workers in a lesson, with a local list folder (one empty coarse list) and pupil 3001 on 127.0.0.41."""
    tmp = tmp_path_factory.mktemp("two")
    (tmp / "lists" / "local").mkdir(parents=True)
    (tmp / "lists" / "local" / "coarse.txt").write_text("# the school's own words\n", encoding="utf-8")
    roster = tmp / "roster.csv"
    roster.write_text(f"leerlingnummer;naam;groep;apparaat\n3001;Noor Jansen;groep 7-8;{PUPIL}\n", encoding="utf-8")
    klaswacht("roster", "import", str(roster), "--data-dir", str(tmp / "data"))
    yield from stopped_after(start(tmp / "data", "--period", "lesson", "--lists", str(tmp / "lists"), workers=2))


def test_two_workers_print_the_contract_lines_and_serve_one_port(two: Running) -> None:
    """`run --workers 2`: the four address lines, one proxy address, two worker processes behind it."""
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", two.lines["proxy"])
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", two.lines["dashboard"])
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/metrics", two.lines["metrics"])
    assert Path(two.lines["ca"]).read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert sorted(workers_of(two)) == [0, 1]
    assert metric(two, "klaswacht_workers") == 2


def test_new_connections_are_spread_over_both_workers_and_the_counters_sum_them(two: Running) -> None:
    """200 requests, each on a new connection: both workers take a good share, and the one metrics address counts
    every request once in the verdicts and the decision histogram, summed over the workers."""
    verdict = 'klaswacht_verdicts_total{action="block",category="coarse",rule="search-words"}'
    before = (connections(two), metric(two, verdict), metric(two, "klaswacht_decision_seconds_count"))
    for _ in range(200):
        assert fetch(two.proxy, BLOCKED)[0] == 403
    after = connections(two)
    share = [a - b for a, b in zip(after, before[0], strict=True)]
    assert sum(share) == 200
    assert min(share) >= 50, share  # the kernel's hash spreads them; 50 of 200 is far from a fair split's tail
    assert metric(two, verdict) == before[1] + 200
    assert metric(two, "klaswacht_decision_seconds_count") == before[2] + 200
    assert metric(two, "klaswacht_decision_seconds_bucket{le=\"+Inf\"}") == before[2] + 200


def test_the_limit_on_reports_holds_across_workers(two: Running) -> None:
    """Twenty reports from one device, spread over both workers: five recorded (the limit is counted in the shared
    database), fifteen thanked and counted as dropped."""
    before = (connections(two), metric(two, 'klaswacht_reports_dropped_total{reason="limit"}'))
    for _ in range(20):
        status, page = fetch_from(two.proxy, "http://www.school-test.nl/.klaswacht/meld", "127.0.0.31",
                                  data=b"kind=report")
        assert status == 200 and "Dank je wel!" in page
    assert all(after > b for after, b in zip(connections(two), before[0], strict=True))
    assert metric(two, 'klaswacht_reports_dropped_total{reason="limit"}') == before[1] + 15
    result = subprocess.run([KLASWACHT, "events", "--data-dir", str(two.data_dir)], capture_output=True, text=True,
                            timeout=30, check=True)
    reports = [e for e in map(json.loads, result.stdout.splitlines()) if e["host"] == "www.school-test.nl"]
    assert len(reports) == 5 and {e["action"] for e in reports} == {"report"}


def spread(running: Running, request: Callable[[], int], expected: int, times: int = 20) -> None:
    """`request` answers `expected` every one of `times` times, and both workers took some of them."""
    before = connections(running)
    assert [request() for _ in range(times)] == [expected] * times
    assert all(after > b for after, b in zip(connections(running), before, strict=True))


def test_a_list_change_is_in_force_in_every_worker(two: Running) -> None:
    """A word added to a local list: each worker reloads (the ok count rises by two), then every request, whichever
    worker takes it, is blocked."""
    search = "http://www.google.com/search?q=blauwebessenjam"
    assert fetch(two.proxy, search)[0] != 403  # allowed (no internet here: 502)
    ok = metric(two, 'klaswacht_reloads_total{result="ok"}')
    (two.data_dir.parent / "lists" / "local" / "coarse.txt").write_text("blauwebessenjam\n", encoding="utf-8")
    assert until(lambda: metric(two, 'klaswacht_reloads_total{result="ok"}') == ok + 2, 10) is not None
    spread(two, lambda: fetch(two.proxy, search)[0], 403)


def test_a_ban_is_in_force_in_every_worker_within_two_seconds(two: Running) -> None:
    """A ban set by the command line reaches both workers' snapshots: two seconds later every request of the
    pupil's device is refused, whichever worker takes it."""
    site = "http://www.speelgoedwinkel.nl/"
    assert fetch_from(two.proxy, site, PUPIL)[0] != 403
    ends = (datetime.now().astimezone() + timedelta(hours=1)).isoformat(timespec="minutes")
    klaswacht("ban", "3001", "--until", ends, "--reason", "test", "--data-dir", str(two.data_dir))
    time.sleep(2.0)
    spread(two, lambda: fetch_from(two.proxy, site, PUPIL)[0], 403)


def test_workers_run_with_two_malloc_arenas_and_without_psycopg_on_sqlite(two: Running) -> None:
    """Per-worker memory (issue 6): glibc's malloc held to two arenas unless the environment says otherwise, and the
    PostgreSQL driver (some 7 MiB) not loaded by a worker whose store is SQLite."""
    workers = workers_of(two)
    assert len(workers) == 2
    for pid in workers.values():
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert f"MALLOC_ARENA_MAX={os.environ.get('MALLOC_ARENA_MAX', '2')}".encode() in environ
        maps = Path(f"/proc/{pid}/maps").read_text()
        assert "libsqlite3" in maps or "_sqlite3" in maps  # the store is open: the look below sees loaded modules
        assert "psycopg" not in maps and "libpq" not in maps


def test_an_arena_limit_in_the_environment_is_kept(tmp_path: Path) -> None:
    """MALLOC_ARENA_MAX set by the administrator wins over klaswacht's two; the metrics folder is always this run's."""
    given = worker_environment({"MALLOC_ARENA_MAX": "8", "PROMETHEUS_MULTIPROC_DIR": "/elsewhere"}, tmp_path)
    assert given == {"MALLOC_ARENA_MAX": "8", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    assert worker_environment({}, tmp_path)["MALLOC_ARENA_MAX"] == "2"


def test_a_killed_worker_is_started_again_while_the_other_serves(two: Running) -> None:
    """SIGKILL to worker 1: every request still gets its answer, worker 1 is started again (logged, counted) and
    takes connections again; killed again at once, it waits twice as long before its next start."""
    old = workers_of(two)
    os.kill(old[1], signal.SIGKILL)
    # Reaped by `klaswacht run` (so its listening socket is closed: a connection queued on it at the instant of
    # the kill would be reset, as section 9 of deploy/README.md says).
    assert until(lambda: not Path(f"/proc/{old[1]}").exists(), 10) is not None
    for _ in range(20):  # meanwhile: all served by worker 0
        assert fetch(two.proxy, BLOCKED)[0] == 403
    assert until(lambda: metric(two, "klaswacht_workers") == 2, 60) is not None
    assert metric(two, "klaswacht_worker_restarts_total") == 1
    again = workers_of(two)
    assert again[0] == old[0] and again[1] != old[1]
    before = connections(two)
    for _ in range(100):
        assert fetch(two.proxy, BLOCKED)[0] == 403
    assert connections(two)[1] > before[1]  # the new worker 1 has joined the port

    os.kill(again[1], signal.SIGKILL)
    assert until(lambda: metric(two, "klaswacht_worker_restarts_total") == 2, 60) is not None
    assert until(lambda: metric(two, "klaswacht_workers") == 2, 60) is not None
    assert two.stop() == 0
    assert re.search(rf"proxy worker 1 \(pid {old[1]}\) stopped unexpectedly \(exit -9\).* again in 1 s", two.stderr)
    assert re.search(rf"proxy worker 1 \(pid {again[1]}\) stopped unexpectedly \(exit -9\).* again in 2 s",
                     two.stderr)


def test_the_default_is_one_worker_per_core(tmp_path: Path) -> None:
    """Without --workers, `klaswacht run` starts one worker for each core it may run on."""
    running = start(tmp_path, "--period", "lesson", workers=None)
    try:
        assert sorted(workers_of(running)) == list(range(len(os.sched_getaffinity(0))))
        assert metric(running, "klaswacht_workers") == len(os.sched_getaffinity(0))
    finally:
        assert running.stop() == 0


def test_stop_flushes_the_events_of_both_workers(tmp_path: Path) -> None:
    """SIGTERM stops both workers cleanly and each writes its queued events: the store has one block per request."""
    running = start(tmp_path, "--period", "lesson", workers=2)
    try:
        before = connections(running)
        for _ in range(60):
            assert fetch(running.proxy, BLOCKED)[0] == 403
        assert all(after > b for after, b in zip(connections(running), before, strict=True))
    finally:
        assert running.stop() == 0, running.stderr
    assert not workers_of(running)
    result = subprocess.run([KLASWACHT, "events", "--data-dir", str(tmp_path)], capture_output=True, text=True,
                            timeout=30, check=True)
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["action"], e["host"]) for e in events] == [("block", "www.google.com")] * 60


def test_workers_stop_on_their_own_when_run_is_killed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`klaswacht run` killed outright (SIGKILL): its workers notice, flush their events and stop; so does the
    dashboard."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the metrics folder it cannot remove stays in the test's own
    running = start(tmp_path / "data", "--period", "lesson", workers=2)
    workers = workers_of(running)
    dashboard = [pid for pid, _ in children(running, b"dashboards.serve")]
    assert len(workers) == 2 and len(dashboard) == 1
    try:
        for _ in range(10):
            assert fetch(running.proxy, BLOCKED)[0] == 403
        running.process.kill()
        running.process.wait(30)
        assert until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers.values()), 20) is not None
        assert until(lambda: not Path(f"/proc/{dashboard[0]}").exists(), 20) is not None
    finally:
        for pid in dashboard:  # not left behind by this test, whatever happened
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        running.process.communicate(timeout=30)  # the pipes close once the children are gone
    result = subprocess.run([KLASWACHT, "events", "--data-dir", str(tmp_path / "data")], capture_output=True,
                            text=True, timeout=30, check=True)
    assert len(result.stdout.splitlines()) == 10
    assert [p.name.startswith("klaswacht-metrics-") for p in tmp_path.iterdir() if p.name != "data"] == [True]


def test_run_refuses_a_proxy_port_that_is_in_use(tmp_path: Path) -> None:
    """A port something listens on already is refused before any worker starts (SO_REUSEPORT would not say so)."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = subprocess.run([KLASWACHT, "run", "--data-dir", str(tmp_path), "--proxy-port", str(port),
                                 "--dashboard-port", "0", "--metrics-port", "0"],
                                capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert f"the proxy port {port} on 127.0.0.1 is in use" in result.stderr


def test_workers_must_be_at_least_one(tmp_path: Path) -> None:
    """--workers 0 is refused with exit 2."""
    result = subprocess.run([KLASWACHT, "run", "--data-dir", str(tmp_path), "--workers", "0"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and "--workers must be 1 or more" in result.stderr


# --- the loop the workers run on


async def _listen_twice(port: int) -> tuple[int, int]:
    async def ignore(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    first = await asyncio.start_server(ignore, "127.0.0.1", port)
    try:
        taken = first.sockets[0].getsockname()[1]
        second = await asyncio.start_server(ignore, "127.0.0.1", taken)
        shared = second.sockets[0].getsockname()[1]
        second.close()
        return taken, shared
    finally:
        first.close()


def test_the_worker_loop_lets_two_servers_share_a_port() -> None:
    """On ReusePortLoop, asyncio.start_server (as mitmproxy calls it) can listen twice on one port."""
    with asyncio.Runner(loop_factory=ReusePortLoop) as runner:
        first, second = runner.run(_listen_twice(0))
    assert first == second


def test_without_it_the_second_server_is_refused() -> None:
    """The same on asyncio's own loop fails with EADDRINUSE: the share comes from ReusePortLoop."""
    with asyncio.Runner() as runner, pytest.raises(OSError) as refused:
        runner.run(_listen_twice(0))
    assert refused.value.errno == errno.EADDRINUSE


def test_a_socket_made_by_the_caller_keeps_its_options() -> None:
    """create_server(sock=...) is left alone: no SO_REUSEPORT is forced onto a socket the caller made."""
    async def serve(sock: socket.socket) -> int:
        server = await asyncio.get_running_loop().create_server(asyncio.Protocol, sock=sock)
        try:
            return server.sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
        finally:
            server.close()

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    with asyncio.Runner(loop_factory=ReusePortLoop) as runner:
        assert runner.run(serve(sock)) == 0
