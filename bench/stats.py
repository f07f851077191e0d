"""The pure arithmetic of the proxy benchmark: medians of per-round ratios, and Prometheus histograms.

No I/O here, so tests/bench/test_stats.py can check it exactly.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence

from prometheus_client.parser import text_string_to_metric_families

# A histogram as Prometheus exposes it: cumulative counts by upper bound (the last bound is +Inf),
# plus the sum and the count of the observations.
Buckets = dict[float, float]


def median(values: Iterable[float]) -> float:
    """The median of the finite values, or NaN when there are none."""
    finite = [v for v in values if math.isfinite(v)]
    return statistics.median(finite) if finite else math.nan


def ratio(a: float, b: float) -> float:
    """a / b, or NaN when b is zero or either is not a number (a round that measured nothing)."""
    if not (math.isfinite(a) and math.isfinite(b)) or b == 0:
        return math.nan
    return a / b


def median_ratio(a_by_round: Sequence[float], b_by_round: Sequence[float]) -> float:
    """The median over rounds of a / b, each ratio taken within its own round.

    Dividing within a round cancels what the round shared (a busy machine slows both sides alike);
    the median then drops the odd round where the noise hit one side only.
    """
    if len(a_by_round) != len(b_by_round):
        raise ValueError(f"rounds differ: {len(a_by_round)} and {len(b_by_round)}")
    return median(ratio(a, b) for a, b in zip(a_by_round, b_by_round, strict=True))


def histogram_from_text(text: str, name: str) -> tuple[Buckets, float, float]:
    """The histogram `name` from Prometheus text: (cumulative buckets, sum, count), summed over label sets.

    Summing over label sets aggregates a histogram that several workers expose each with their own label.
    """
    buckets: Buckets = {}
    total = count = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name == f"{name}_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
            elif sample.name == f"{name}_sum":
                total += sample.value
            elif sample.name == f"{name}_count":
                count += sample.value
    return buckets, total, count


def histogram_delta(after: tuple[Buckets, float, float], before: tuple[Buckets, float, float]
                    ) -> tuple[Buckets, float, float]:
    """What was observed between two scrapes of the same histogram."""
    buckets = {bound: value - before[0].get(bound, 0.0) for bound, value in after[0].items()}
    return buckets, after[1] - before[1], after[2] - before[2]


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float:
    """The q-quantile from cumulative buckets, interpolated linearly inside a bucket as Prometheus does.

    A quantile in the +Inf bucket is reported as the highest finite bound (Prometheus's convention);
    NaN when nothing was observed.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} is not between 0 and 1")
    bounds = sorted(buckets)
    if not bounds or bounds[-1] != math.inf:
        raise ValueError("a histogram needs its +Inf bucket")
    observed = buckets[math.inf]
    if observed <= 0:
        return math.nan
    rank = q * observed
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == math.inf:
                return bounds[-2] if len(bounds) > 1 else math.nan
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return bounds[-2] if len(bounds) > 1 else math.nan  # not reached: the +Inf bucket holds every observation
