"""Pre-training the project's small GLIP on the synthetic grounding stream (`python -m sdpt.pretrain_glip`).

The same stream, prompts and held-out set as the small Grounding DINO (`sdpt.pretrain`): every image gets its own
prompt (its classes plus random absent ones, shuffled), scenes come from a seed, and the checkpoint with the best
held-out mAP@0.5 on the pre-training concepts is kept in `--out`. The MiniLM text encoder stays frozen; everything
else trains with GLIP's loss (token focal, GIoU x 2 weighted by centerness, centerness BCE).

Stop it at any time: every `--save-every` steps the latest weights, the optimizer and the step are written to
`<out>/latest`, and running the same command again goes on from there on the same schedule (new scenes: the stream
is re-seeded from the step). `--resume DIR` instead starts a new schedule from a saved model folder.
"""
from __future__ import annotations

import argparse
import json
import logging
import random
import tempfile
import time
from pathlib import Path

import torch

from sdpt.data import load_coco, load_image
from sdpt.detector.glip.inputs import encode
from sdpt.detector.glip.small import build_small_glip, load_small_glip, save_small_glip
from sdpt.evaluate import evaluate_detections
from sdpt.training_state import has_training_state, load_training_state, save_training_state
from sdpt.pretrain import HELD_OUT_SEED, optimizer_and_schedule, prompt_for
from sdpt.synthetic.grounding import PRETRAIN, scene_stream, write_coco

logger = logging.getLogger("sdpt.pretrain_glip")
TEXT_ENCODER = "language_backbone."


def held_out_map(detector, dataset, batch_size: int = 8) -> dict:
    """COCO metrics of the detector on `dataset`, every class named in every caption (as evaluation does)."""
    detections = []
    for start in range(0, len(dataset.samples), batch_size):
        samples = dataset.samples[start:start + batch_size]
        detections += detector.detect([load_image(s.path) for s in samples], dataset.class_names, threshold=0.0)
    return evaluate_detections(dataset, detections)


def fusion_gammas(detector) -> dict[str, float]:
    """Mean |gamma| of the fusion layers' layer scales (GLIP starts them at 1 / layers)."""
    values = {}
    for k, block in enumerate(detector.fusion_blocks):
        values[f"layer {k} image"] = float(block.gamma_v.detach().abs().mean())
        values[f"layer {k} text"] = float(block.gamma_l.detach().abs().mean())
    return values


def pretrain(out: Path, steps: int, batch_size: int = 8, lr: float = 1e-4, seed: int = 0, eval_every: int = 500,
             eval_images: int = 100, max_classes: int = 24, resume: Path | None = None,
             stop_at: int | None = None, save_every: int = 250) -> dict:
    torch.manual_seed(seed)
    latest = Path(out) / "latest"
    going_on = has_training_state(latest)
    detector = load_small_glip(latest if going_on else resume) if (going_on or resume) else build_small_glip(seed)
    model = detector.model
    for name, param in model.named_parameters():
        param.requires_grad_(not name.startswith(TEXT_ENCODER))  # MiniLM stays as it was trained
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer, schedule = optimizer_and_schedule(trainable, lr, steps)
    done, best = 0, {"map50": -1.0}
    if going_on:
        saved = load_training_state(latest, optimizer, schedule)
        done, best = saved["step"], saved["best"]
        logger.info("going on from step %d (best so far %s)", done, best)
    rng = random.Random(seed * 1_000_003 + done)
    stream = scene_stream(PRETRAIN, seed * 1_000_003 + done if done else seed)
    held_out_dir = Path(tempfile.mkdtemp(prefix="sdpt-glip-heldout-"))
    held_out = load_coco(write_coco(held_out_dir, PRETRAIN, eval_images, HELD_OUT_SEED), held_out_dir / "images")
    start = time.perf_counter()
    for step in range(done + 1, min(steps, stop_at or steps) + 1):
        model.train()
        model.language_backbone.eval()
        scenes = [next(stream) for _ in range(batch_size)]
        prompts = [prompt_for(objects, PRETRAIN.class_names, rng, max_classes) for _, objects in scenes]
        batch = encode([image for image, _ in scenes], [p[0] for p in prompts], detector.tokenizer, detector.config,
                       targets=[p[1] for p in prompts])
        loss, parts = detector.batch_loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)  # GLIP clips the full model's gradient norm at 1
        optimizer.step()
        schedule.step()
        if step % 50 == 0:
            logger.info("step %d/%d loss %.3f (token %.3f giou %.3f centerness %.3f) %.2f steps/s", step, steps,
                        loss.item(), parts["token_focal"], parts["giou"], parts["centerness"],
                        (step - done) / (time.perf_counter() - start))
        if step % eval_every == 0 or step == steps or step == stop_at:
            model.eval()
            metrics = held_out_map(detector, held_out)
            logger.info("step %d held-out mAP %.4f mAP50 %.4f (%.1f min); gamma %s", step, metrics["map"],
                        metrics["map50"], (time.perf_counter() - start) / 60,
                        {k: round(v, 4) for k, v in fusion_gammas(detector).items()})
            if metrics["map50"] > best["map50"]:
                best = {"step": step, "map": metrics["map"], "map50": metrics["map50"],
                        "minutes": round((time.perf_counter() - start) / 60, 1), "gamma": fusion_gammas(detector)}
                save_small_glip(detector, out)
                (Path(out) / "pretrain_result.json").write_text(json.dumps(best, indent=2))
        if step % save_every == 0 or step == steps or step == stop_at:
            save_small_glip(detector, latest)
            save_training_state(latest, optimizer, step, {"best": best, "steps": steps, "lr": lr, "seed": seed})
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("assets/glip-small"))
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--eval-images", type=int, default=100)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-classes", type=int, default=24)
    parser.add_argument("--resume", type=Path, default=None)
    parser.add_argument("--stop-at", type=int, default=None)
    parser.add_argument("--save-every", type=int, default=250)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.threads:
        torch.set_num_threads(args.threads)
    best = pretrain(args.out, args.steps, args.batch_size, args.lr, args.seed, args.eval_every, args.eval_images,
                    args.max_classes, args.resume, args.stop_at, args.save_every)
    logger.info("best held-out checkpoint: %s, saved to %s", best, args.out)


if __name__ == "__main__":
    main()
