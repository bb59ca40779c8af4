"""Pre-training the project's small detector on the synthetic grounding stream (`python -m sdpt.pretrain`).

Every image gets its own prompt: the classes it shows plus random absent ones, shuffled, so the model learns to
ground phrases rather than memorise a class order. Scenes are generated on the fly from a seed, so the run is
reproducible from this script alone. The best checkpoint by held-out mAP@0.5 is kept.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import random
import tempfile
import time
from pathlib import Path

import torch

from sdpt.data import load_coco
from sdpt.detector import detection_loss, encode_batch, load_detector
from sdpt.detector.grounding_dino.loading import set_fusion_scale
from sdpt.detector.grounding_dino.small_model import PHRASE_POSITIONS, build_small_untrained, save_small, set_phrase_positions
from sdpt.evaluate import evaluate
from sdpt.synthetic.grounding import PRETRAIN, scene_stream, write_coco

logger = logging.getLogger("sdpt.pretrain")

HELD_OUT_SEED = 10_000  # the held-out pre-training-concept set: `python -m sdpt.synthetic pretrain --seed 10000`


def prompt_for(objects, class_names: list[str], rng: random.Random, max_classes: int):
    """(class names of the prompt, targets) for one scene: its classes plus absent ones, shuffled.

    With `max_classes` >= the class count every prompt names every class (as evaluation does); otherwise a random
    number of random absent classes is added.
    """
    present = sorted({name for _, name in objects})
    absent = [n for n in class_names if n not in present]
    if max_classes >= len(class_names):
        extra = len(absent)
    else:
        most = max(0, max_classes - len(present))
        extra = rng.randint(min(most, max(0, 4 - len(present))), most)  # at least 4 classes where allowed
    names = present + rng.sample(absent, min(extra, len(absent)))
    rng.shuffle(names)
    index = {name: k for k, name in enumerate(names)}
    return names, {"boxes": [box for box, _ in objects], "classes": [index[name] for _, name in objects]}


def optimizer_and_schedule(trainable: list, lr: float, steps: int):
    """AdamW with a linear warm-up (a tenth of the run, at most 300 steps) into a cosine decay over `steps`."""
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=1e-4)
    warmup = max(1, min(300, steps // 10))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (
        1 + math.cos(math.pi * min(1.0, s / steps))))
    return optimizer, schedule


def pretrain(out: Path, steps: int, batch_size: int = 8, lr: float = 1e-4, seed: int = 0,
             eval_every: int = 500, eval_images: int = 100, max_classes: int = 24, resume: Path | None = None,
             positions: str = "from_one", stop_at: int | None = None, fusion_scale: float | None = None) -> dict:
    """Train for `steps` steps (from scratch, or on from the checkpoint in `resume`); keep the best in `out`.

    `positions` is how phrase words are numbered for the text backbone (see `sdpt.detector.grounding_dino.small_model`); resuming
    a checkpoint with another scheme than it was trained with switches it over. `stop_at` ends the run early at
    that step, on the schedule of `steps` (how the first stage of the shipped model was made). `fusion_scale` sets
    the fusion layers' layer-scales before training (see `set_fusion_scale`).
    """
    torch.manual_seed(seed)
    detector = load_detector(str(resume), device=None) if resume else build_small_untrained(seed)
    model = detector.model
    set_phrase_positions(model, positions)  # a resumed checkpoint may have been trained with the other numbering
    if fusion_scale is not None:
        set_fusion_scale(model, fusion_scale)
    for name, param in model.named_parameters():
        param.requires_grad_(not name.startswith("model.text_backbone."))  # MiniLM stays as it was trained
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer, schedule = optimizer_and_schedule(trainable, lr, steps)
    rng = random.Random(seed)
    stream = scene_stream(PRETRAIN, seed)
    held_out_dir = Path(tempfile.mkdtemp(prefix="sdpt-heldout-"))
    held_out = load_coco(write_coco(held_out_dir, PRETRAIN, eval_images, HELD_OUT_SEED), held_out_dir / "images")
    best = {"map50": -1.0}
    start = time.perf_counter()
    for step in range(1, min(steps, stop_at or steps) + 1):
        model.train()
        model.model.text_backbone.eval()
        scenes = [next(stream) for _ in range(batch_size)]
        prompts = [prompt_for(objects, PRETRAIN.class_names, rng, max_classes) for _, objects in scenes]
        batch = encode_batch(detector, [image for image, _ in scenes], [p[0] for p in prompts],
                             [p[1] for p in prompts])
        outputs = model(**batch.inputs)
        loss, parts = detection_loss(detector, outputs, batch, aux_loss=True, encoder_loss=True)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 0.1)
        optimizer.step()
        schedule.step()
        if step % 50 == 0:
            elapsed = time.perf_counter() - start
            logger.info("step %d/%d loss %.3f (ce %.3f bbox %.3f giou %.3f) %.2f steps/s", step, steps, loss.item(),
                        parts["loss_ce"], parts["loss_bbox"], parts["loss_giou"], step / elapsed)
        if step % eval_every == 0 or step == steps or step == stop_at:
            model.eval()
            metrics = evaluate(detector, held_out, batch_size=8)
            logger.info("step %d held-out mAP %.4f mAP50 %.4f (%.1f min)", step, metrics["map"], metrics["map50"],
                        (time.perf_counter() - start) / 60)
            if metrics["map50"] > best["map50"]:
                best = {"step": step, "map": metrics["map"], "map50": metrics["map50"],
                        "minutes": round((time.perf_counter() - start) / 60, 1)}
                save_small(detector, out)
                (out / "pretrain_result.json").write_text(json.dumps(best, indent=2))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("assets/sdpt-small"))
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-classes", type=int, default=24,
                        help="classes per prompt (present + random absent ones); >= 48 names all, as evaluation does")
    parser.add_argument("--resume", type=Path, default=None,
                        help="continue from a checkpoint directory (use a new --seed so the scenes are new)")
    parser.add_argument("--phrase-positions", choices=PHRASE_POSITIONS, default="from_one",
                        help="how phrase words are numbered for MiniLM; 'restart' is transformers' numbering, which "
                             "hides the first word of each phrase from the frozen MiniLM (kept to reproduce old runs)")
    parser.add_argument("--stop-at", type=int, default=None,
                        help="stop at this step, keeping the learning-rate schedule of --steps")
    parser.add_argument("--fusion-scale", type=float, default=None,
                        help="set the fusion layers' layer-scales to this before training (transformers starts them "
                             "at 1e-4; see sdpt.detector.grounding_dino.loading.set_fusion_scale)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.threads:
        torch.set_num_threads(args.threads)
    best = pretrain(args.out, args.steps, args.batch_size, args.lr, args.seed, args.eval_every,
                    max_classes=args.max_classes, resume=args.resume, positions=args.phrase_positions,
                    stop_at=args.stop_at, fusion_scale=args.fusion_scale)
    logger.info("best held-out checkpoint: %s, saved to %s", best, args.out)


if __name__ == "__main__":
    main()
