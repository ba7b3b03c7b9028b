"""``python -m experiments.compare``: see :mod:`experiments.compare`."""

import sys

from experiments.compare import main
from experiments.process import run_cli

if __name__ == "__main__":
    # argparse names the program after sys.argv[0]; as CPython's unittest/__main__.py does, name it
    # for the module rather than this file, as the user typed it
    sys.argv[0] = "python -m experiments.compare"
    run_cli(main, "compare")
