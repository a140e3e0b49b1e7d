"""`python -m bench [--quick] [--backend sqlite|postgres|both] [--scenario …]`."""

from bench.run import main

if __name__ == "__main__":
    raise SystemExit(main())
