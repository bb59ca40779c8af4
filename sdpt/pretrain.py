"""Pre-training a host's small detector on the synthetic grounding stream (`python -m sdpt.pretrain --host HOST`).

`--host grounding_dino` (the default) trains the small Grounding DINO into assets/sdpt-small, `--host glip` the
small GLIP into assets/glip-small. The options above the host groups mean the same for every host; those in a host's
group are refused for the other. Each host's training loop lives in its own package and is found through
`sdpt.detector.pretrainers`; what they share (prompts, schedule, held-out set) is `sdpt.pretraining`.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from sdpt.detector import HOSTS, pretrainer

logger = logging.getLogger("sdpt.pretrain")

# What every host's `pretrain` takes, under these names (`--out` is its first argument).
COMMON = ("steps", "batch_size", "lr", "seed", "eval_every", "eval_images", "max_classes", "resume", "stop_at")


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, tuple[str, str]]]:
    """The parser, and for each host-only option (by its `dest`) the host it belongs to and its flag."""
    parser = argparse.ArgumentParser(prog="python -m sdpt.pretrain", description=__doc__.splitlines()[0])
    parser.add_argument("--host", choices=HOSTS, default="grounding_dino",
                        help="which small detector to pre-train (default grounding_dino)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where the best checkpoint goes (default: the host's shipped model, assets/sdpt-small "
                             "or assets/glip-small)")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--eval-images", type=int, default=100, help="held-out images per evaluation")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-classes", type=int, default=24,
                        help="classes per prompt (present + random absent ones); >= 48 names all, as evaluation does")
    parser.add_argument("--resume", type=Path, default=None,
                        help="start a new schedule from a saved model folder (use a new --seed so the scenes are "
                             "new); a GLIP run stopped midway goes on from <out>/latest without it")
    parser.add_argument("--stop-at", type=int, default=None,
                        help="stop at this step, keeping the learning-rate schedule of --steps")
    owners = {}
    for host in HOSTS:
        group = parser.add_argument_group(f"--host {host} only")
        for flag, keywords in pretrainer(host).OPTIONS.items():
            # Suppressed default: an option not given stays out of the namespace, so the host's own default
            # applies and an option given for the other host can be told from one left alone.
            owners[group.add_argument(flag, default=argparse.SUPPRESS, **keywords).dest] = (host, flag)
    return parser, owners


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The parsed command line, `--out` filled in, and in `options` the options given for the chosen host alone."""
    parser, owners = build_parser()
    args = parser.parse_args(argv)
    given = {dest: owner for dest, owner in owners.items() if dest in vars(args)}
    foreign = [f"{flag} is for --host {host} only" for host, flag in given.values() if host != args.host]
    if foreign:
        parser.error(f"{'; '.join(foreign)} (this run is --host {args.host})")
    args.options = {dest: getattr(args, dest) for dest in given}
    if args.out is None:
        args.out = pretrainer(args.host).DEFAULT_OUT
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.threads:
        torch.set_num_threads(args.threads)
    best = pretrainer(args.host).pretrain(args.out, **{name: getattr(args, name) for name in COMMON}, **args.options)
    logger.info("best held-out checkpoint: %s, saved to %s", best, args.out)


if __name__ == "__main__":
    main()
