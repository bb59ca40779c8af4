"""How much the fusion layers change the features they fuse: the measure behind "fusion prompts cannot move it".

Each Grounding DINO fusion layer returns LN(x) + gamma * attn(LN(x), ...), where gamma is a learned per-channel
layer scale that starts at 1e-4. Prompts placed in the fusion attention (SDPT, visual, dual, and the visual half
of UPT and DPT) reach the rest of the detector only through that product. This script prints, per fusion layer and
stream, ||gamma * attn|| / ||LN(x)|| (median over tokens) on a few synthetic images, and the mean |gamma|.

    python -m benchmarks.fusion_share --model assets/sdpt-small
"""
from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
from pathlib import Path

import torch

from sdpt.data import load_coco
from sdpt.detector import encode_batch, load_detector
from sdpt.synthetic.grounding import PRETRAIN, TASKS, write_coco

logger = logging.getLogger("benchmarks.fusion_share")


def fusion_shares(detector, images, class_names: list[str]) -> list[dict]:
    """Per fusion layer: median relative size of the fusion update in the image and the text stream, and |gamma|."""
    layers = [layer.fusion_layer for layer in detector.model.model.encoder.layers]
    records: list[dict] = [{"vision": [], "text": []} for _ in layers]
    handles = []

    def recorder(index, layer):
        def hook(module, args, kwargs, output):
            (delta_v, _), (delta_t, _) = output
            # The attention's inputs are already layer-normed by the fusion layer.
            vision, text = args[0], args[1]
            padding = kwargs.get("text_attention_mask")
            # Real text tokens only: padding would count as zero updates.
            mask = ~padding if padding is not None else torch.ones(text.shape[:2], dtype=torch.bool)
            share_v = (layer.vision_param * delta_v).norm(dim=-1) / vision.norm(dim=-1)
            share_t = ((layer.text_param * delta_t).norm(dim=-1) / text.norm(dim=-1))[mask]
            records[index]["vision"] += share_v.flatten().tolist()
            records[index]["text"] += share_t.flatten().tolist()
        return hook

    for index, layer in enumerate(layers):
        handles.append(layer.attn.register_forward_hook(recorder(index, layer), with_kwargs=True))
    try:
        with torch.no_grad():
            detector.model.eval()
            for start in range(0, len(images), 4):
                chunk = images[start:start + 4]
                batch = encode_batch(detector, chunk, [class_names] * len(chunk))
                detector.model(**batch.inputs)
    finally:
        for handle in handles:
            handle.remove()
    return [{"layer": k, "vision_share": statistics.median(r["vision"]), "text_share": statistics.median(r["text"]),
             "vision_gamma": layers[k].vision_param.abs().mean().item(),
             "text_gamma": layers[k].text_param.abs().mean().item()} for k, r in enumerate(records)]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="assets/sdpt-small")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--task", default="pretrain", choices=["pretrain", *TASKS])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    detector = load_detector(args.model)
    style = PRETRAIN if args.task == "pretrain" else TASKS[args.task]
    with tempfile.TemporaryDirectory() as root:
        data = load_coco(write_coco(Path(root), style, args.images, 50_000), Path(root) / "images")
        images = [sample.load() for sample in data.samples]
        # At most 12 classes per prompt keeps every image's phrases in one prompt for the small model.
        rows = fusion_shares(detector, images, data.class_names[:12])
    print("| fusion layer | mean abs gamma, image | update / features, image | mean abs gamma, text | update / features, text |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['layer']} | {row['vision_gamma']:.4f} | {row['vision_share']:.4f} | {row['text_gamma']:.4f} | "
              f"{row['text_share']:.4f} |")


if __name__ == "__main__":
    main()
