"""Entry point: `python app.py [--model ID] [--data-dir DIR] [--host H] [--port P]` serves the labelling and tuning
app (a Hugging Face Space runs this file too)."""
from __future__ import annotations

import logging

from app.server import build_app, launch_options
from app.settings import build_parser, resolve


def main(argv: list[str] | None = None) -> None:
    args = build_parser("Label a few images, tune a prompt for an open-vocabulary detector, compare.").parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = resolve(args)
    logging.getLogger("app").info("data in %s, database %s", settings.data_dir, settings.database_url)
    demo, context, _worker = build_app(settings)
    demo.launch(**launch_options(settings, context))


if __name__ == "__main__":
    main()
