"""Entry point for `python -m sdpt`."""
import sys

from sdpt.cli import main

if __name__ == "__main__":
    sys.exit(main())
