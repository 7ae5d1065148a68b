"""Timeseries from the hourly rollup (``trace_hours``), shared by the SQL stores.

A timeseries over a week reads ~200,000 traces if it goes to the traces table: ~200 ms of CPU
on SQLite for the sums and the exact percentiles alone. The SQL stores therefore keep, per
(hour of start, project, latency bin), the count and sums of their traces, updated in the same
transaction as the derived columns they add up. A bucket made of whole hours is then a handful
of rollup rows; a partial hour at a bucket's edge is read from the traces themselves.

Percentiles stay exact (nearest rank, as PostgreSQL's ``percentile_disc``): the bins' counts
say which bin holds the wanted rank, and only the traces of that bin in that bucket are read
and sorted (an index on ``(latency_bin, start_ns)`` finds them).

A latency bin is ``digits * 100 + leading two digits`` of the latency in whole microseconds
(about 90 bins per decade, each at most ~10% wide), -1 for a running trace (no latency yet).
The bins only have to be monotonic in the latency; each SQL dialect writes its own expression.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from traceyard.model import ns_to_datetime
from traceyard.store.base import TimeseriesPoint, TimeseriesQuery

HOUR_NS = 3600 * 1_000_000_000

#: Above this share of the range in partial hours the rollup saves little: read the traces.
_MAX_EDGE_SHARE = 0.25

#: (latency bin, start_ns, end_ns, rank within the bin from 1): the latency at that rank.
Pick = tuple[int, int, int, int]


@dataclass
class Bucket:
    """One bucket of the series: [start, end) in ns, and what its traces add up to."""

    start: int
    end: int
    traces: int = 0
    observations: int = 0
    errors: int = 0
    tokens: float = 0.0
    cost: float = 0.0
    #: latency bin → finished traces in it
    bins: dict[int, int] = field(default_factory=dict)

    def add(self, traces: int, observations: int, errors: int, tokens: float, cost: float) -> None:
        self.traces += traces
        self.observations += observations
        self.errors += errors
        self.tokens += tokens
        self.cost += cost

    def add_trace(
        self, latency_bin: int, observations: int, errors: int, tokens: float, cost: float
    ) -> None:
        """One trace read from the traces table (a bucket's partial hour)."""
        self.add(1, observations, errors, tokens, cost)
        if latency_bin >= 0:
            self.bins[latency_bin] = self.bins.get(latency_bin, 0) + 1

    def rank_in_bin(self, p: float) -> tuple[int, int] | None:
        """(bin, rank within it) of the nearest-rank ``p`` percentile; None if no latency."""
        finished = sum(self.bins.values())
        if not finished:
            return None
        rank = math.ceil(p * finished)
        for latency_bin in sorted(self.bins):
            count = self.bins[latency_bin]
            if rank <= count:
                return latency_bin, rank
            rank -= count
        raise AssertionError("rank beyond the histogram")  # pragma: no cover


@dataclass
class Plan:
    """Where each bucket's figures come from: whole hours (rollup) and partial ones (traces)."""

    start: int
    interval: int
    buckets: list[Bucket]
    #: [first, last) hour numbers the rollup is read for
    hours: tuple[int, int]
    #: (bucket index, start_ns, end_ns): parts of buckets that are not whole hours
    edges: list[tuple[int, int, int]]

    def whole_hours(self) -> dict[int, Bucket]:
        """Hour number → the bucket holding all of it (hours split by an edge are left out)."""
        found = {}
        for hour in range(*self.hours):
            index = (hour * HOUR_NS - self.start) // self.interval
            if 0 <= index < len(self.buckets):
                bucket = self.buckets[index]
                if bucket.start <= hour * HOUR_NS and (hour + 1) * HOUR_NS <= bucket.end:
                    found[hour] = bucket
        return found


def plan(start: int, end: int, interval: int) -> Plan | None:
    """The buckets of [start, end) every ``interval`` ns, or None when the rollup would not
    help: no bucket holds a whole hour, or too much of the range is in partial hours (bucket
    edges off the hour), which are read from the traces anyway."""
    if end <= start:
        return None
    buckets: list[Bucket] = []
    edges: list[tuple[int, int, int]] = []
    edge_ns = 0
    for index, bucket_start in enumerate(range(start, end, interval)):
        bucket_end = min(bucket_start + interval, end)
        buckets.append(Bucket(bucket_start, bucket_end))
        first_hour = -(-bucket_start // HOUR_NS)  # ceil
        last_hour = bucket_end // HOUR_NS
        if first_hour >= last_hour:  # no whole hour inside
            edges.append((index, bucket_start, bucket_end))
            edge_ns += bucket_end - bucket_start
            continue
        for edge_start, edge_end in (
            (bucket_start, first_hour * HOUR_NS),
            (last_hour * HOUR_NS, bucket_end),
        ):
            if edge_start < edge_end:
                edges.append((index, edge_start, edge_end))
                edge_ns += edge_end - edge_start
    if edge_ns >= end - start or edge_ns > max(_MAX_EDGE_SHARE * (end - start), 2 * HOUR_NS):
        return None  # no whole hour at all (buckets under an hour), or too few
    return Plan(start, interval, buckets, (-(-start // HOUR_NS), end // HOUR_NS), edges)


def add_rows(
    plan: Plan,
    hour_sums: Iterable[Sequence[Any]],
    hour_bins: Iterable[Sequence[Any]],
    edge_traces: Callable[[int, int], Iterable[Sequence[Any]]],
) -> None:
    """Fill the plan's buckets: ``hour_sums`` rows are (hour, traces, observations, errors,
    tokens, cost), ``hour_bins`` rows (hour, latency bin, finished traces), and
    ``edge_traces(start, end)`` the traces of a partial hour as (latency bin, observations,
    errors, tokens, cost)."""
    hours = plan.whole_hours()
    for hour, *sums in hour_sums:
        if hour in hours:
            hours[hour].add(*sums)
    for hour, latency_bin, count in hour_bins:
        bucket = hours.get(hour)
        if bucket is not None and count:
            bucket.bins[latency_bin] = bucket.bins.get(latency_bin, 0) + count
    for index, start, end in plan.edges:
        bucket = plan.buckets[index]
        for row in edge_traces(start, end):
            bucket.add_trace(*row)


def points(
    buckets: list[Bucket], latencies: Callable[[list[Pick]], list[float | None]]
) -> list[TimeseriesPoint]:
    """The series; ``latencies`` answers every percentile lookup at once (one query)."""
    used = [b for b in buckets if b.traces]
    wanted: list[Pick] = []
    slots: list[tuple[int | None, int | None]] = []
    for bucket in used:
        slot: list[int | None] = []
        for p in (0.5, 0.95):
            found = bucket.rank_in_bin(p)
            if found is None:
                slot.append(None)
            else:
                slot.append(len(wanted))
                wanted.append((found[0], bucket.start, bucket.end, found[1]))
        slots.append((slot[0], slot[1]))
    values = latencies(wanted) if wanted else []
    if any(v is None for v in values):
        raise RollupMismatchError("the hourly rollup disagrees with the traces")
    result = []
    for bucket, (p50, p95) in zip(used, slots, strict=True):
        start = ns_to_datetime(bucket.start)
        assert start is not None
        result.append(
            TimeseriesPoint(
                bucket_start=start,
                traces=bucket.traces,
                observations=bucket.observations,
                errors=bucket.errors,
                latency_p50_ms=values[p50] if p50 is not None else None,
                latency_p95_ms=values[p95] if p95 is not None else None,
                total_tokens=bucket.tokens,
                total_cost=bucket.cost,
            )
        )
    return result


def timeseries(
    query: TimeseriesQuery,
    by_hours: Callable[[TimeseriesQuery], list[TimeseriesPoint] | None],
    from_traces: Callable[[TimeseriesQuery], list[TimeseriesPoint]],
) -> list[TimeseriesPoint]:
    """The rollup's answer (``by_hours``) where it has one, else the traces' (``from_traces``):
    grouped series, buckets off the hour and a rollup that disagrees go to the traces."""
    if query.group_by is None:
        try:
            points = by_hours(query)
        except RollupMismatchError:
            points = None
        if points is not None:
            return points
    return from_traces(query)


class RollupMismatchError(Exception):
    """The rollup and the traces disagree (never expected): the caller reads the traces."""
