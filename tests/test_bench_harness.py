"""The proxy benchmark's pure parts: ratios and medians, Prometheus histograms, the client's HTTP framing.

Nothing here times anything: the benchmark itself (bench/proxies.py) runs on demand, not in the tests.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from bench.load import HTTPError, Job, read_response, request_bytes, run_job
from bench.services import make_certificates
from bench.stats import histogram_delta, histogram_from_text, histogram_quantile, median, median_ratio, ratio
from bench.traffic import PASSED, SEARCH, SOCIAL, mix_visits

INF = math.inf


def test_median_ratio_divides_within_each_round() -> None:
    """Each round's ratio is taken first; the median of those, not the ratio of the medians."""
    a = [100.0, 300.0, 200.0]
    b = [50.0, 100.0, 200.0]  # per-round ratios 2, 3, 1 -> median 2; median(a) / median(b) would be 2.0 too
    assert median_ratio(a, b) == 2.0
    assert median_ratio([10.0, 40.0], [10.0, 10.0]) == 2.5  # ratios 1 and 4: the mean of the middle two


def test_median_ratio_skips_rounds_that_measured_nothing() -> None:
    """A round where the divisor is zero gives no ratio instead of an infinity."""
    assert median_ratio([5.0, 6.0, 8.0], [0.0, 2.0, 2.0]) == 3.5
    assert math.isnan(median_ratio([1.0], [0.0]))
    assert math.isnan(ratio(math.nan, 1.0))
    assert math.isnan(median([]))


def test_median_ratio_refuses_unequal_rounds() -> None:
    """Two lists of different length cannot be paired round by round."""
    with pytest.raises(ValueError, match="rounds differ"):
        median_ratio([1.0, 2.0], [1.0])


@pytest.mark.parametrize(("q", "expected"), [
    (0.5, 0.00005 + (0.0001 - 0.00005) * (50 - 40) / (90 - 40)),  # inside the (50 µs, 100 µs] bucket
    (0.2, 0.00001 + (0.00005 - 0.00001) * (20 - 10) / (40 - 10)),
    (0.05, 0.00001 * 5 / 10),  # the first bucket starts at zero
    (0.99, 0.0005 + (0.001 - 0.0005) * (99 - 98) / (100 - 98)),
])
def test_histogram_quantile_interpolates_like_prometheus(q: float, expected: float) -> None:
    """Linear interpolation inside the bucket that holds the rank, as Prometheus's histogram_quantile."""
    buckets = {0.00001: 10.0, 0.00005: 40.0, 0.0001: 90.0, 0.0005: 98.0, 0.001: 100.0, INF: 100.0}
    assert histogram_quantile(q, buckets) == pytest.approx(expected)


def test_histogram_quantile_in_the_inf_bucket_and_empty() -> None:
    """A rank past the last finite bound reports that bound; an empty histogram has no quantile."""
    assert histogram_quantile(0.99, {0.001: 50.0, 0.01: 90.0, INF: 100.0}) == 0.01
    assert math.isnan(histogram_quantile(0.5, {0.001: 0.0, INF: 0.0}))
    with pytest.raises(ValueError, match=r"\+Inf"):
        histogram_quantile(0.5, {0.001: 1.0})
    with pytest.raises(ValueError, match="between 0 and 1"):
        histogram_quantile(1.5, {INF: 1.0})


METRICS = """\
# HELP klaswacht_decision_seconds Time the addons spend deciding one request
# TYPE klaswacht_decision_seconds histogram
klaswacht_decision_seconds_bucket{le="0.0001",worker="1"} 3.0
klaswacht_decision_seconds_bucket{le="0.001",worker="1"} 4.0
klaswacht_decision_seconds_bucket{le="+Inf",worker="1"} 5.0
klaswacht_decision_seconds_sum{worker="1"} 0.01
klaswacht_decision_seconds_count{worker="1"} 5.0
klaswacht_decision_seconds_bucket{le="0.0001",worker="2"} 1.0
klaswacht_decision_seconds_bucket{le="0.001",worker="2"} 1.0
klaswacht_decision_seconds_bucket{le="+Inf",worker="2"} 1.0
klaswacht_decision_seconds_sum{worker="2"} 0.00005
klaswacht_decision_seconds_count{worker="2"} 1.0
# HELP klaswacht_requests_total HTTP requests seen by the filter
# TYPE klaswacht_requests_total counter
klaswacht_requests_total 6.0
"""


def test_histogram_from_text_sums_the_workers() -> None:
    """Buckets, sum and count of the same histogram from several workers add up; other series are ignored."""
    buckets, total, count = histogram_from_text(METRICS, "klaswacht_decision_seconds")
    assert buckets == {0.0001: 4.0, 0.001: 5.0, INF: 6.0}
    assert total == pytest.approx(0.01005)
    assert count == 6.0


def test_histogram_delta_is_what_happened_between_two_scrapes() -> None:
    """The difference of two scrapes, bucket by bucket."""
    before = ({0.0001: 1.0, INF: 2.0}, 0.5, 2.0)
    after = ({0.0001: 4.0, INF: 6.0}, 1.5, 6.0)
    assert histogram_delta(after, before) == ({0.0001: 3.0, INF: 4.0}, 1.0, 4.0)


def _response(data: bytes) -> tuple[int, bool, bytes]:
    async def go() -> tuple[int, bool, bytes]:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        status, close = await read_response(reader)
        return status, close, await reader.read()

    return asyncio.run(go())


@pytest.mark.parametrize(("raw", "status", "close"), [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, False),
    (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno", 403, True),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;x=1\r\nabc\r\n0\r\n\r\n", 200, False),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", 200, True),
    (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx", 200, False),
    (b"HTTP/1.1 200 OK\r\n\r\nuntil the end", 200, True),
    (b"HTTP/1.1 304 Not Modified\r\n\r\n", 304, False),
])
def test_read_response_reads_exactly_one_response(raw: bytes, status: int, close: bool) -> None:
    """A response is read to its end by length, chunks or close; the next response's bytes stay unread."""
    got_status, got_close, rest = _response(raw + b"NEXT")
    assert (got_status, got_close) == (status, close)
    assert rest == (b"" if b"until the end" in raw else b"NEXT")


def test_read_response_refuses_what_is_not_http() -> None:
    """A proxy that answers something else is an error the load generator counts, not a crash."""
    with pytest.raises(HTTPError, match="bad status line"):
        _response(b"SSH-2.0-OpenSSH\r\n\r\n")


def test_request_bytes_absolute_form_for_a_proxy() -> None:
    """Plain HTTP through a proxy names the whole URL; the last request of a connection says close."""
    assert request_bytes("nos.nl", "/2k.html", True, False).startswith(b"GET http://nos.nl/2k.html HTTP/1.1\r\n")
    direct = request_bytes("nos.nl", "/2k.html", False, True)
    assert direct.startswith(b"GET /2k.html HTTP/1.1\r\nHost: nos.nl\r\n")
    assert b"Connection: close\r\n" in direct and direct.endswith(b"\r\n\r\n")


def test_the_mix_is_mostly_passed_through_hosts() -> None:
    """About 80 % of visits go to passed-through hosts, the rest to search engines and social hosts."""
    visits = mix_visits(10, count=1000)
    share = sum(host in PASSED for host, _ in visits) / len(visits)
    assert 0.75 < share < 0.85
    searches = {host for host, _ in SEARCH}
    assert all(host in PASSED or host in searches or host in SOCIAL for host, _ in visits)
    assert all(len(paths) == 10 for _, paths in visits)
    assert mix_visits(10, count=1000) == visits  # deterministic


def test_a_refused_connect_is_an_answer_not_an_error(tmp_path: Path) -> None:
    """A proxy that answers CONNECT with 403 (a blocked host) is counted as answered, under its own status."""
    _, cert, _ = make_certificates(tmp_path, ("www.tiktok.com",))

    async def go() -> dict[str, object]:
        async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(refuse, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await run_job(Job(proxy=("127.0.0.1", port), scheme="https", connections=2,
                                     visits=[("www.tiktok.com", ["/"])], reuse=False, duration=0.3, warmup=0.0,
                                     origin_cert=str(cert)))

    result = asyncio.run(go())
    assert result["errors"] == {}
    assert result["status"] == {"CONNECT 403": result["total"]}
    assert result["total"] > 0


def test_each_scenario_has_the_targets_it_is_read_for() -> None:
    """e2guardian MITM only where there is HTTPS to decrypt; the second klaswacht only where scaling is read."""
    from bench.proxies import DIRECT, E2GUARDIAN, E2MITM, KW1, KW2, MITMDUMP, targets_for
    from bench.traffic import scenarios

    by_name = {s.name: targets_for(s) for s in scenarios()}
    always = {DIRECT, MITMDUMP, E2GUARDIAN, KW1}
    assert all(always <= set(targets) for targets in by_name.values())
    assert by_name["HTTP keep-alive 2 KB c16"] == (DIRECT, MITMDUMP, E2GUARDIAN, KW1)
    assert by_name["HTTPS keep-alive 2 KB c16"] == (DIRECT, MITMDUMP, E2GUARDIAN, E2MITM, KW1)
    assert by_name["HTTPS new conn 2 KB c64"] == (DIRECT, MITMDUMP, E2GUARDIAN, E2MITM, KW1, KW2)
    assert by_name["mix HTTP browsing c64"] == (DIRECT, MITMDUMP, E2GUARDIAN, KW1, KW2)
    assert by_name["mix HTTPS browsing c16"] == (DIRECT, MITMDUMP, E2GUARDIAN, E2MITM, KW1, KW2)


def test_the_machine_bound_counts_proxy_client_and_origin_on_the_same_cores() -> None:
    """At 500 requests/s with 1 ms of CPU per request (proxy 0.6, client and nginx 0.4), 2 cores allow 2,000/s: 4x."""
    from bench.proxies import Cell, machine_bound

    def cell(rate: float, total: int, cpu: float, others: float) -> Cell:
        return Cell(rate=rate, total=total, cpu=cpu, status={}, errors={}, connections=0, tls=0, decrypted=0,
                    others_cpu=others)

    bound, per_request = machine_bound([cell(500, 1500, 0.9, 0.6), cell(400, 1200, 0.72, 0.48)], 2)
    assert per_request == pytest.approx(0.001)
    assert bound == pytest.approx((4.0 + 5.0) / 2)  # per round: 2,000/500 and 2,000/400
    assert math.isnan(machine_bound([cell(0, 0, 0.0, 0.0)], 2)[0])
