"""Entry point for ``python -m sa1b.cdn``."""

from sa1b.cdn.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
