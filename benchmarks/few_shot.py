"""Few-shot transfer benchmark: every method on the held-out synthetic tasks, for several shot counts and seeds.

    python -m benchmarks.few_shot --model assets/sdpt-small                  # the full table (long)
    python -m benchmarks.few_shot --model tiny-random --quick                # a smoke run (seconds to minutes)

For each task (sdpt/synthetic/grounding.py: appearance, new_word, many), shots k and seed, a k-shot training set
is drawn from a seeded pool (images are added until every class has at least k boxes) and every method is tuned
on it, then evaluated on separate test images of the task (mAP@[.5:.95] and mAP@.5 by pycocotools) and on
held-out images of the pre-training concepts (forgetting). Trainable parameters, tuning wall time and peak
memory (process RSS above the level before tuning, sampled, after freed memory is handed back) are reported too.
Prints a markdown table; writes it, a one-line-per-method summary and a plot of mAP against shots to --out.
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import hashlib
import json
import logging
import os
import random
import tempfile
import threading
import time
from pathlib import Path

import torch

from benchmarks.entries import ENTRIES, METHODS, entry_method
from benchmarks.few_shot_report import method_card, plot, summary, table
from sdpt.config import TrainConfig, to_dict
from sdpt.data import FewShotSet, load_coco
from sdpt.detector import load_detector
from sdpt.evaluate import evaluate
from sdpt.methods import build_method
from sdpt.synthetic.grounding import PRETRAIN, TASKS, write_coco

logger = logging.getLogger("benchmarks.few_shot")
LR_CHOICE = Path(__file__).resolve().parent / "results" / "lr_choice.json"


def _release_free_memory() -> None:
    """Give memory that earlier runs freed back to the OS, so that the next run's growth shows in the RSS (glibc keeps
    freed blocks otherwise, and a later run that reuses them looks as if it needed nothing)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the figure is then an underestimate after the first run
        pass


class PeakMemory:
    """Peak resident memory of this process above its level at start, sampled every 20 ms (CPU runs)."""

    def __enter__(self):
        _release_free_memory()
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._rss())

    @property
    def megabytes(self) -> float:
        if torch.cuda.is_available():
            return torch.cuda.max_memory_allocated() / 2**20
        return (self.peak - self.base) / 2**20


def k_shot(pool: FewShotSet, shots: int, seed: int) -> FewShotSet:
    """Images from the pool, in a seeded order, until every class has at least `shots` boxes."""
    order = list(range(len(pool.samples)))
    random.Random(seed).shuffle(order)
    counts = [0] * len(pool.class_names)
    chosen = []
    for index in order:
        if min(counts) >= shots:
            break
        sample = pool.samples[index]
        if any(counts[c] < shots for c in sample.classes.tolist()):
            chosen.append(sample)
            for c in sample.classes.tolist():
                counts[c] += 1
    return FewShotSet(pool.class_names, chosen)


class ResultsLog:
    """Rows already measured, kept in a JSON-lines file so a long run can stop and go on later (or elsewhere).

    A row counts only for the setting it was measured under (model file, steps, sizes...): change any of them and
    the old rows are ignored rather than mixed in.
    """

    def __init__(self, path: Path | None, setting: dict):
        self.path, self.setting, self.rows = path, setting, {}
        if path is not None and path.is_file():
            for line in path.read_text().splitlines():
                row = json.loads(line)
                if row.get("setting") == setting:
                    self.rows[self.key(row)] = row

    @staticmethod
    def key(row: dict) -> tuple:
        return row["task"], row["method"], row["shots"], row["seed"], row.get("variant", "")

    def get(self, **key) -> dict | None:
        return self.rows.get(self.key({"variant": "", **key}))

    def add(self, row: dict) -> dict:
        row = {**row, "setting": self.setting}
        self.rows[self.key(row)] = row
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
        return row


def model_fingerprint(model: str) -> str:
    """The model's name plus a digest of its weights file where it is a local directory."""
    weights = Path(model) / "model.safetensors"
    if not weights.is_file():
        return model
    return f"{model}@{hashlib.sha256(weights.read_bytes()).hexdigest()[:12]}"


def task_pool(root: Path, task: str, images: int) -> FewShotSet:
    """The task's seeded pool that k-shot sets are drawn from: the same images for every benchmark that draws from it
    (the table, the lr search, the default's choice), so their seed-k draws are the same draws."""
    return load_coco(write_coco(root / task / "pool", TASKS[task], images, 30_000), root / task / "pool/images")


class TaskData:
    """A task's seeded pool (k-shot sets are drawn from it) and test images, plus the pre-training test images."""

    def __init__(self, root: Path, task: str, pool_images: int, test_images: int, pretrain_test: FewShotSet):
        self.task, self.pretrain_test = task, pretrain_test
        self.pool = task_pool(root, task, pool_images)
        self.test = load_coco(write_coco(root / task / "test", TASKS[task], test_images, 40_000),
                              root / task / "test/images")


def measure(detector, data: TaskData, method: str, shots: int, seed: int, config: TrainConfig,
            options: dict | None = None) -> dict:
    """Tune one prompt on a k-shot draw and evaluate it on the task's test set and on the pre-training concepts."""
    from sdpt.train import tune

    train = k_shot(data.pool, shots, seed)
    prompt = build_method(method, detector, options, seed=seed)
    with PeakMemory() as memory:
        start = time.perf_counter()
        tune(detector, train, prompt, config)
        seconds = time.perf_counter() - start
    result = evaluate(detector, data.test, prompt)
    return {"task": data.task, "method": method, "shots": shots, "seed": seed, "lr": config.lr,
            "map": result["map"], "map50": result["map50"], "trainable": prompt.trainable_parameters(),
            "percent": 100 * prompt.trainable_fraction(), "seconds": seconds, "memory_mb": memory.megabytes,
            "memory_released_first": True, "options": to_dict(prompt.config),
            "forgetting_map50": evaluate(detector, data.pretrain_test, prompt)["map50"],
            # the same with every class prompted: what the prompt itself does to classes it was not tuned on
            # (routed, as the library detects, those classes go to the zero-shot model)
            "forgetting_map50_all_prompted": evaluate(detector, data.pretrain_test, prompt, routed=False)["map50"]}


def zero_shot(detector, data: TaskData) -> dict:
    zero = evaluate(detector, data.test)
    return {"task": data.task, "method": "zero-shot", "shots": 0, "seed": 0, "map": zero["map"],
            "map50": zero["map50"], "trainable": 0, "percent": 0.0, "seconds": 0.0, "memory_mb": 0.0,
            "forgetting_map50": evaluate(detector, data.pretrain_test)["map50"]}


def setting_of(args) -> dict:
    # protocol 2: fusion prompts act through the branch after gamma, and each method tunes at its own learning
    # rate (recorded per row); rows of the earlier protocol are kept in the log but not mixed in.
    return {"model": model_fingerprint(args.model), "steps": args.steps, "batch_size": args.batch_size,
            "pool_images": args.pool_images, "test_images": args.test_images, "protocol": 2}


def learning_rates(path: Path | None) -> dict[str, float]:
    """Each method's learning rate as the lr search chose it (`benchmarks.lr_search`), where it has one."""
    if path is None or not path.is_file():
        return {}
    return {method: float(lr) for method, lr in json.loads(path.read_text()).items()}


def default_options(method: str, changes: dict | None = None) -> dict:
    """The method's config as a row records it: its defaults, with `changes` applied."""
    from sdpt.config import from_dict
    from sdpt.methods import METHODS as CLASSES

    return to_dict(from_dict(CLASSES[method].config_class, changes or {}))


def train_config(args, entry: str, seed: int) -> TrainConfig:
    """The protocol's tuning config, at the entry's chosen learning rate (an injection without one: SDPT's; else the
    method class's `default_lr`)."""
    from sdpt.methods import METHODS as CLASSES

    method, _ = entry_method(entry)
    lr = args.lrs.get(entry, args.lrs.get(method, CLASSES[method].default_lr))
    return TrainConfig(steps=args.steps, batch_size=args.batch_size, seed=seed, lr=lr)


def is_current(row: dict, args) -> bool:
    """A row counts while its entry's lr and default options are those it was measured with (rows from before options
    were logged count for their lr alone), so a new choice or default re-measures it instead of mixing bases."""
    if row["method"] == "zero-shot":
        return True
    method, changes = entry_method(row["method"])
    options = default_options(method, changes)
    return row.get("lr") == train_config(args, row["method"], row["seed"]).lr and row.get("options", options) == options


def run(args) -> list[dict]:
    """Every (seed, task, shots, method) not yet in the results log, seeds outermost so that a run stopped early
    still covers every cell once; stops starting new runs after --max-minutes."""
    detector = load_detector(args.model)
    args.host = detector.host  # the method card says which host its figures are true of
    log = ResultsLog(args.results, setting_of(args))
    deadline = time.monotonic() + 60 * args.max_minutes if args.max_minutes is not None else None
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        pretrain_test = load_coco(write_coco(root / "pretrain", PRETRAIN, args.test_images, 20_000), root / "pretrain/images")
        data = {task: TaskData(root, task, args.pool_images, args.test_images, pretrain_test) for task in args.tasks}
        for task in args.tasks:
            if log.get(task=task, method="zero-shot", shots=0, seed=0) is None:
                log.add(zero_shot(detector, data[task]))
        for seed in args.seeds:
            for task in args.tasks:
                for shots in args.shots:
                    for entry in args.methods:
                        done = log.get(task=task, method=entry, shots=shots, seed=seed)
                        if done is not None and is_current(done, args):
                            continue
                        config = train_config(args, entry, seed)
                        method, changes = entry_method(entry)
                        if deadline is not None and time.monotonic() > deadline:
                            logger.info("time budget of %s minutes spent; run again to go on", args.max_minutes)
                            return selected(log, args)
                        row = log.add({**measure(detector, data[task], method, shots, seed, config, changes),
                                       "method": entry})
                        logger.info("%s", {k: v for k, v in row.items() if k != "setting"})
    return selected(log, args)


def selected(log: ResultsLog, args) -> list[dict]:
    """The logged rows this invocation asked for and that are current, in table order."""
    rows = [r for r in log.rows.values() if r["task"] in args.tasks and not r.get("variant")
            and (r["method"] == "zero-shot" or (r["method"] in args.methods and r["shots"] in args.shots
                                                 and r["seed"] in args.seeds)) and is_current(r, args)]
    order = {m: k for k, m in enumerate(["zero-shot"] + ENTRIES)}
    return sorted(rows, key=lambda r: (args.tasks.index(r["task"]), r["shots"], order[r["method"]], r["seed"]))


def add_protocol_arguments(parser: argparse.ArgumentParser) -> None:
    """The tuning protocol and the results log, shared with `benchmarks.sdpt_ablation` (same rows, same setting)."""
    parser.add_argument("--model", default="assets/sdpt-small")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lrs", type=Path, default=LR_CHOICE,
                        help="JSON of each method's learning rate, as benchmarks.lr_search writes it (methods it "
                             "lacks tune at their class's default_lr)")
    parser.add_argument("--pool-images", type=int, default=80)
    parser.add_argument("--test-images", type=int, default=60)
    parser.add_argument("--results", type=Path, default=None,
                        help="JSON-lines log of measured rows: rows already there (same setting) are not run again")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="start no new run after this many minutes (the log keeps what was done)")


def quick_protocol(args) -> None:
    """The smoke run's protocol: few steps, few images."""
    args.steps, args.pool_images, args.test_images = 3, 12, 4


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one task, 1 shot, 1 seed, 3 methods, few steps")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=ENTRIES,
                        help="methods, and SDPT's other injections (sdpt:paper, sdpt:shared_gate) as entries of their own")
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=None,
                        help="directory for table.md, summary.md and map_vs_shots.png")
    add_protocol_arguments(parser)
    args = parser.parse_args(argv)
    args.lrs = learning_rates(args.lrs)
    if args.quick:
        args.tasks, args.shots, args.seeds = args.tasks[:1], [1], [0]
        args.methods = [m for m in args.methods if entry_method(m)[0] in ("sdpt", "text", "full")]
        quick_protocol(args)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = run(args)
    text = table(rows)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "table.md").write_text(text + "\n")
        (args.out / "summary.md").write_text(summary(rows) + "\n")
        card = method_card(rows, model_fingerprint(args.model), args.host)
        (args.out / "method_card.json").write_text(json.dumps(card, indent=2) + "\n")
        plot(rows, args.out / "map_vs_shots.png")
    return rows


if __name__ == "__main__":
    main()
