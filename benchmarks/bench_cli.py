"""How fast the command line answers (run by hand, not a test): ``neurodyn --help``, ``neurodyn
recall --help``, a refused argument and ``import neurodyn``, each in a fresh interpreter, the
median of ``--repeat`` runs; ``--pythonpath`` times another checkout of the package instead
(for example a worktree of an older revision). Issue 18's target: under 1 s.

    python benchmarks/bench_cli.py --repeat 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "neurodyn --help": ["-m", "neurodyn.cli", "--help"],
    "neurodyn recall --help": ["-m", "neurodyn.cli", "recall", "--help"],
    "neurodyn recall --n-cues 0 (refused)": ["-m", "neurodyn.cli", "recall", "--n-cues", "0"],
    "import neurodyn": ["-c", "import neurodyn"],
    "python alone": ["-c", "pass"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pythonpath", default=str(ROOT), help="the checkout to time (default: this one)")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": args.pythonpath}
    for name, argv in CASES.items():
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            # (from a neutral folder: python -m puts the working folder first on sys.path)
            subprocess.run([sys.executable, *argv], env=env, capture_output=True, cwd=tempfile.gettempdir())
            times.append(time.perf_counter() - start)
        print(f"{name:40s} {statistics.median(times):6.3f} s (median of {args.repeat})")


if __name__ == "__main__":
    main()
