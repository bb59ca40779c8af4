"""Entry point of the web app. The app itself is built in a later issue; until then this says how to use the CLI."""
import logging
import sys


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger(__name__).info(
        "The web app is not built yet. Use the command line meanwhile:\n"
        "  python -m sdpt tune --model tiny-random --images DIR --annotations COCO.json --steps 50 --out PROMPT\n"
        "  python -m sdpt detect --model tiny-random --prompt PROMPT --classes \"a,b\" IMAGE\n"
        "  python -m sdpt eval --model tiny-random --prompt PROMPT --images DIR --annotations COCO.json --json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
