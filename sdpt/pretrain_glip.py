"""`python -m sdpt.pretrain_glip ...` is `python -m sdpt.pretrain --host glip ...`: kept because the commands that
made the shipped small GLIP (assets/glip-small/README.md, BENCHMARKS.md) are written this way."""
from __future__ import annotations

import sys

from sdpt.pretrain import main as pretrain_main


def main(argv: list[str] | None = None) -> None:
    pretrain_main(["--host", "glip", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
