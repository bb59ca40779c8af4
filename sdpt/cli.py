"""The `python -m sdpt` command line: tune, detect and eval."""
from __future__ import annotations

import argparse
import json
import logging
import sys

logger = logging.getLogger("sdpt")


def _parse_layers(text: str | None) -> list[int] | None:
    if text is None or text.strip().lower() == "all":
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--layers takes 'all' or comma-separated layer numbers, got {text!r}")


def _parse_classes(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sdpt", description="SDPT prompt tuning for Grounding DINO.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub, prompted: bool = False):
        sub.add_argument("--model", default="IDEA-Research/grounding-dino-tiny",
                         help="Grounding DINO: hub id, local save_pretrained directory, or 'tiny-random'; GLIP: an "
                              "official .pth file, a hub reference owner/repo/file.pth, a GLIP folder (e.g. "
                              "assets/glip-small), or 'glip-tiny-random'")
        sub.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
        sub.add_argument("--batch-size", type=int, default=None, help="images per batch")
        if prompted:
            sub.add_argument("--prompt", default=None, help="prompt directory written by 'tune'")
            sub.add_argument("--json", action="store_true", help="print one JSON object")
            sub.add_argument("--route", choices=["routed", "all-prompted"], default="routed",
                             help="'routed' (default): each class by the model the prompt's routing names (classes "
                                  "the prompt was not tuned with: zero-shot); 'all-prompted': every class prompted")

    tune = commands.add_parser("tune", help="tune a prompt on a COCO-labelled few-shot set")
    common(tune)
    tune.add_argument("--images", required=True, help="directory holding the annotation file's images")
    tune.add_argument("--annotations", required=True, help="COCO JSON; category names are the class names")
    tune.add_argument("--method", default=None, help="prompt method (default: sdpt.methods.DEFAULT_METHOD, 'sdpt')")
    tune.add_argument("--steps", type=int, default=200)
    tune.add_argument("--out", required=True, help="directory to write the prompt to")
    tune.add_argument("--lr", type=float, default=None, help="learning rate (default: the method's own, chosen by "
                                                                 "benchmarks/lr_search.py)")
    tune.add_argument("--tokens", type=int, default=None, help="prototype tokens per set")
    tune.add_argument("--layers", type=_parse_layers, default=None,
                      help="fusion layers to prompt: 'all' or e.g. '5' or '4,5'")
    tune.add_argument("--shared", action="store_true", help="one prototype set shared by all prompted layers")
    tune.add_argument("--seed", type=int, default=0)
    tune.add_argument("--no-encoder-loss", action="store_true",
                      help="do not supervise the encoder's top-k proposals (for bases trained without that loss)")
    tune.add_argument("--no-cache", action="store_true", help="recompute the prompt-independent prefix every step")
    tune.add_argument("--weight-decay", type=float, default=0.0,
                      help="AdamW weight decay; 0.25 (GLIP's) keeps more of what the base model knew about other "
                           "class names, at some cost on yours (BENCHMARKS.md, forgetting)")
    tune.add_argument("--route-min-boxes", type=int, default=None,
                      help="classes with fewer training boxes are detected zero-shot (default: TrainConfig's)")
    tune.add_argument("--distill-weight", type=float, default=None,
                      help="weight of the zero-shot teacher for classes without boxes (default 0 = off, chosen on "
                           "validation draws; 10 keeps them where they were when routing is off)")
    tune.add_argument("--unlabelled-negatives", action="store_true",
                      help="treat classes with no box in the training set as absent from every image (the old loss)")
    tune.add_argument("--val-annotations", default=None,
                      help="COCO JSON of validation images (in --val-images): keep the best step's prompt on them")
    tune.add_argument("--val-images", default=None, help="directory of the validation images")
    tune.add_argument("--stop-margin", type=float, default=None,
                      help="with validation images: keep the latest step within this much mAP of the best "
                           "(default: TrainConfig's; 0 = the best step)")
    tune.add_argument("--augment", action="store_true",
                      help="also train on each image mirrored and zoomed out (see BENCHMARKS.md before using it)")

    detect = commands.add_parser("detect", help="detect classes in images, zero-shot or with a prompt")
    common(detect, prompted=True)
    detect.add_argument("--classes", default=None, help="comma-separated class names (default: the prompt's)")
    detect.add_argument("--threshold", type=float, default=0.3)
    detect.add_argument("images", nargs="+", help="image files")

    evaluate = commands.add_parser("eval", help="COCO mAP on a labelled set")
    common(evaluate, prompted=True)
    evaluate.add_argument("--images", required=True, help="directory holding the annotation file's images")
    evaluate.add_argument("--annotations", required=True, help="COCO JSON; category names are the class names")
    return parser


def run_tune(args) -> int:
    from sdpt.config import TrainConfig
    from sdpt.data import load_coco
    from sdpt.detector import load_detector
    from sdpt.methods import DEFAULT_METHOD, build_method
    from sdpt.prompt_io import save_prompt
    from sdpt.train import tune

    dataset = load_coco(args.annotations, args.images)
    detector = load_detector(args.model, args.device)
    args.method = args.method or DEFAULT_METHOD
    options = {"num_tokens": args.tokens, "layers": args.layers, "shared": args.shared or None}
    prompt = build_method(args.method, detector, {k: v for k, v in options.items() if v is not None}, seed=args.seed)
    logger.info("%s: %d trainable parameters (%.4f%% of %d)", args.method, prompt.trainable_parameters(),
                100 * prompt.trainable_fraction(), detector.parameter_count())
    config = TrainConfig(steps=args.steps, seed=args.seed, encoder_loss=not args.no_encoder_loss,
                         cache=not args.no_cache, augment=args.augment, weight_decay=args.weight_decay)
    if args.lr is not None:
        config.lr = args.lr
    if args.batch_size is not None:
        config.batch_size = args.batch_size
    if args.route_min_boxes is not None:
        config.route_min_boxes = args.route_min_boxes
    if args.distill_weight is not None:
        config.distill_weight = args.distill_weight
    if args.stop_margin is not None:
        config.stop_margin = args.stop_margin
    config.unlabelled_negatives = args.unlabelled_negatives
    validation = None
    if args.val_annotations is not None:
        validation = load_coco(args.val_annotations, args.val_images or args.images)
    every = max(1, args.steps // 20)

    def progress(info):
        if info.step % every == 0 or info.step == info.total_steps:
            logger.info("step %d/%d  loss %.4f  lr %.2e  %.1fs elapsed  eta %.1fs",
                        info.step, info.total_steps, info.loss, info.lr, info.elapsed_s, info.eta_s)

    result = tune(detector, dataset, prompt, config, on_step=progress, validation=validation)
    out = save_prompt(prompt, args.out, dataset.class_names,
                      extra={"train": {"steps": len(result.history), "final_loss": result.history[-1].loss,
                                       "seconds": round(result.seconds, 2), "kept_step": result.best_step,
                                       "validation": result.validation}})
    zero_shot = [name for name, entry in prompt.routing.classes.items() if entry.route != "prompt"]
    if zero_shot:
        logger.info("detected zero-shot (too few training boxes): %s", ", ".join(zero_shot))
    logger.info("prompt written to %s", out)
    return 0


def _load_with_prompt(args):
    from sdpt.detector import load_detector
    from sdpt.prompt_io import load_prompt

    detector = load_detector(args.model, args.device)
    if args.prompt is None:
        return detector, None, None
    prompt, config = load_prompt(args.prompt, detector)
    return detector, prompt, config


def run_detect(args) -> int:
    from sdpt.detector import ClassPromptError
    from sdpt.inference import detect_many

    detector, prompt, prompt_config = _load_with_prompt(args)
    if args.classes is not None:
        class_names = _parse_classes(args.classes)
    elif prompt_config is not None:
        class_names = prompt_config["class_names"]
    else:
        raise ClassPromptError("no classes given; pass --classes \"a,b\" (or --prompt with a tuned prompt)")
    found = detect_many(detector, args.images, class_names, [prompt], threshold=args.threshold,
                        batch_size=args.batch_size or 4, routed=args.route == "routed",
                        on_batch=lambda done, total: logger.info("detected %d/%d images", done, total))[0]
    if args.json:
        print(json.dumps({"images": [{"image": str(path), "detections": d.to_list()}
                                     for path, d in zip(args.images, found)]}, ensure_ascii=False))
    else:
        for path, detections in zip(args.images, found):
            print(f"{path}: {len(detections)} detections")
            for item in detections.to_list():
                print(f"  {item['label']}  {item['score']:.3f}  {item['box']}")
    return 0


def run_eval(args) -> int:
    from sdpt.data import load_coco
    from sdpt.evaluate import evaluate

    dataset = load_coco(args.annotations, args.images)
    detector, prompt, _ = _load_with_prompt(args)
    routed = args.route == "routed"
    metrics = evaluate(detector, dataset, prompt, batch_size=args.batch_size or 4, routed=routed,
                       on_batch=lambda done, total: logger.info("detected %d/%d images", done, total))
    routes = {}
    if prompt is not None:
        routes = {name: (prompt.routing.route_of(name) if routed and prompt.routing is not None else "prompt")
                  for name in dataset.class_names}
        metrics["routes"] = routes
    if args.json:
        print(json.dumps(metrics, ensure_ascii=False))
    else:
        print(f"mAP@[.5:.95] {metrics['map']:.4f}   mAP@.5 {metrics['map50']:.4f}   mAP@.75 {metrics['map75']:.4f}")
        for name, value in metrics["per_class"].items():
            route = f"  ({routes[name]})" if routes else ""
            print(f"  {name}: AP {value:.4f}{route}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from sdpt.errors import USER_ERRORS

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("transformers", "httpx", "huggingface_hub", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    handlers = {"tune": run_tune, "detect": run_detect, "eval": run_eval}
    try:
        return handlers[args.command](args)
    except USER_ERRORS as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"error: {message}", file=sys.stderr)
        return 2
