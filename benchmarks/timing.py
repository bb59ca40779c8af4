"""Small timing helpers shared by the performance benchmarks: interleaved runs, medians, peak memory."""
from __future__ import annotations

import resource
import statistics
import time
from typing import Callable


def interleaved(run_a: Callable[[], float | None], run_b: Callable[[], float | None], repeats: int
                ) -> tuple[list[float], list[float]]:
    """Alternate a and b `repeats` times (a first in even rounds, b first in odd ones, so drift hits both).

    Each callable returns its own measured seconds, or None to be timed whole here.
    """
    times_a, times_b = [], []
    for round_index in range(repeats):
        order = [(run_a, times_a), (run_b, times_b)]
        if round_index % 2:
            order.reverse()
        for run, times in order:
            start = time.perf_counter()
            measured = run()
            times.append(measured if measured is not None else time.perf_counter() - start)
    return times_a, times_b


def median_ratio(times_a: list[float], times_b: list[float]) -> float:
    """Median of the per-round ratios a/b."""
    return statistics.median(a / b for a, b in zip(times_a, times_b))


def rss_bytes() -> int:
    """This process's resident memory now."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
