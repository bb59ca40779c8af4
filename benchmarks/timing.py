"""Small timing helpers shared by the performance benchmarks: interleaved runs, medians, peak memory."""
from __future__ import annotations

import resource
import statistics
import time
from typing import Callable


def interleaved(run_a: Callable[[], float | None], run_b: Callable[[], float | None], repeats: int
                ) -> tuple[list[float], list[float]]:
    """Alternate a and b `repeats` times; see `interleaved_all`."""
    times_a, times_b = interleaved_all([run_a, run_b], repeats)
    return times_a, times_b


def interleaved_all(runs: list[Callable[[], float | None]], repeats: int) -> list[list[float]]:
    """Run each callable once per round, `repeats` rounds, in the given order in even rounds and reversed in odd
    ones, so drift hits every side. Each callable returns its own measured seconds, or None to be timed whole here.
    """
    times: list[list[float]] = [[] for _ in runs]
    for round_index in range(repeats):
        order = list(zip(runs, times))
        if round_index % 2:
            order.reverse()
        for run, measured_times in order:
            start = time.perf_counter()
            measured = run()
            measured_times.append(measured if measured is not None else time.perf_counter() - start)
    return times


def median_ratio(times_a: list[float], times_b: list[float]) -> float:
    """Median of the per-round ratios a/b."""
    return statistics.median(a / b for a, b in zip(times_a, times_b))


def rss_bytes() -> int:
    """This process's resident memory now."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def peak_rss_bytes() -> int:
    """Peak resident memory of this process's address space (VmHWM). Not getrusage's ru_maxrss: that survives
    exec, so a spawned child would report its parent's peak."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_rss() -> None:
    """Start VmHWM again from the current resident size (Linux >= 4.0), so the next peak is this phase's own."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:  # not permitted here: the peak then covers the whole process life
        pass
