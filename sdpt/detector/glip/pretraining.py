"""Pre-training the small GLIP (`small`) on the synthetic grounding stream: its training loop, its held-out
measure, and the command-line options only it understands (`python -m sdpt.pretrain --host glip`).

The same stream, prompts and held-out set as the small Grounding DINO (`sdpt.pretraining`): every image gets its
own prompt (its classes plus random absent ones, shuffled), scenes come from a seed, and the checkpoint with the
best held-out mAP@0.5 on the pre-training concepts is kept in `out`. The MiniLM text encoder stays frozen;
everything else trains with GLIP's loss (token focal, GIoU x 2 weighted by centerness, centerness BCE).

Stop it at any time: every `save_every` steps the latest weights, the optimizer and the step are written to
`<out>/latest`, and running the same command again goes on from there on the same schedule (new scenes: the stream
is re-seeded from the step). `resume` instead starts a new schedule from a saved model folder.
"""
from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path

import torch

from sdpt.detector.glip.inputs import encode
from sdpt.detector.glip.small import build_small_glip, load_small_glip, save_small_glip
from sdpt.evaluate import evaluate
from sdpt.pretraining import held_out_set, optimizer_and_schedule, prompt_for
from sdpt.synthetic.grounding import PRETRAIN, scene_stream
from sdpt.training_state import has_training_state, load_training_state, save_training_state

logger = logging.getLogger(__name__)

TEXT_ENCODER = "language_backbone."
DEFAULT_OUT = Path("assets/glip-small")
# Options of `python -m sdpt.pretrain` that only this host understands: flag -> argparse keywords, whose `dest`
# is the keyword of `pretrain` below (a flag left out keeps that keyword's default).
OPTIONS = {
    "--save-every": {"type": int,
                     "help": "write the latest weights, optimizer and step to <out>/latest every this many steps "
                             "(default 250); the same command run again goes on from there"},
}


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
    """Train for `steps` steps (from scratch, from `resume`, or on from `<out>/latest` where a stopped run left its
    state); keep the best checkpoint in `out`. `stop_at` ends the run early at that step, on the schedule of
    `steps`."""
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
    held_out = held_out_set(eval_images, prefix="sdpt-glip-heldout-")
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
            metrics = evaluate(detector, held_out, batch_size=8)
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
