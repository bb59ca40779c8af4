"""Does supervising the encoder's top-k proposals (the original Grounding DINO encoder loss) help SDPT?

    python -m benchmarks.encoder_loss --seeds 0 1

Two small bases are made from tiny-random by full fine-tuning on synthetic shapes, one without and one with the
encoder loss; SDPT is then tuned on the same images under class names the bases never saw, with and without it.
"""
from __future__ import annotations

import argparse
import copy
import logging
import tempfile

import torch

from sdpt.config import TrainConfig
from sdpt.data import load_coco
from sdpt.detector import load_detector
from sdpt.evaluate import evaluate
from sdpt.methods import build_method
from sdpt.synthetic import make_shapes_dataset
from sdpt.train import tune


def warm_base(dataset, steps: int, encoder_loss: bool):
    detector = load_detector("tiny-random", device="cpu")
    full = build_method("full", detector)
    tune(detector, dataset, full, TrainConfig(steps=steps, lr=1e-3, batch_size=2, adam_beta2=0.999,
                                              encoder_loss=encoder_loss))
    detector.model = full.tuned
    return detector.freeze()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--warm-steps", type=int, default=300)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as root:
        dataset = load_coco(make_shapes_dataset(root, num_images=4, seed=1), f"{root}/images")
        new_words = copy.copy(dataset)
        new_words.class_names = ["apple", "moon"]
        print("| base trained with encoder loss | SDPT encoder loss | seed | zero-shot mAP | zero-shot mAP50 "
              "| tuned mAP | tuned mAP50 |")
        print("|---|---|---|---|---|---|---|")
        for base_encoder_loss in (False, True):
            detector = warm_base(dataset, args.warm_steps, base_encoder_loss)
            zero_shot = evaluate(detector, new_words)
            for encoder_loss in (False, True):
                for seed in args.seeds:
                    prompt = build_method("sdpt", detector, seed=seed)
                    tune(detector, new_words, prompt,
                         TrainConfig(steps=args.steps, batch_size=4, seed=seed, encoder_loss=encoder_loss))
                    tuned = evaluate(detector, new_words, prompt)
                    print(f"| {base_encoder_loss} | {encoder_loss} | {seed} | {zero_shot['map']:.3f} | "
                          f"{zero_shot['map50']:.3f} | {tuned['map']:.3f} | {tuned['map50']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
