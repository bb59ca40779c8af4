"""`python -m sdpt.synthetic STYLE --images N --seed S --out DIR`: write a synthetic COCO set.

STYLE is `pretrain` (the pre-training concepts) or a transfer task (appearance, new_word, many). The small model's
held-out set is `python -m sdpt.synthetic pretrain --images 100 --seed 10000 --out DIR`.
"""
import argparse
import sys
from pathlib import Path

from sdpt.synthetic.grounding import PRETRAIN, TASKS, write_coco


def main(argv=None) -> int:
    styles = {"pretrain": PRETRAIN, **TASKS}
    parser = argparse.ArgumentParser(prog="python -m sdpt.synthetic", description=__doc__.splitlines()[0])
    parser.add_argument("style", choices=sorted(styles))
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    path = write_coco(args.out, styles[args.style], args.images, args.seed)
    print(f"wrote {args.images} images and {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
