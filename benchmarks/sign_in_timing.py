"""Sign-in time for a known and an unknown user name: the two must not tell names apart.

    python -m benchmarks.sign_in_timing [--tries 40]

Times app.auth.password_checker (the callable the app's sign-in runs) with a wrong password for a known name and for
an unknown one, interleaved, and prints both medians and their ratio. The limiter is set wide so that it does not
step in.
"""
from __future__ import annotations

import argparse
import statistics
import time

from app.auth import SignInLimiter, hash_password, password_checker


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=40)
    args = parser.parse_args(argv)
    check = password_checker({"alice": hash_password("right")}, SignInLimiter(max_failures=10**9))
    known, unknown = [], []
    for _ in range(args.tries):
        for name, times in (("alice", known), ("nobody", unknown)):
            start = time.perf_counter()
            check(name, "wrong")
            times.append(time.perf_counter() - start)
    a, b = statistics.median(known) * 1000, statistics.median(unknown) * 1000
    ratio = b / a
    print(f"median sign-in: known name {a:.1f} ms, unknown name {b:.1f} ms, unknown / known {ratio:.3f} "
          f"({args.tries} tries each)")
    return ratio


if __name__ == "__main__":
    main()
