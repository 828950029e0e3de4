"""Run bnfold from a checkout: ``python cli.py inspect MODEL``.

A thin shim over :mod:`bnfold.cli`; the installed command is ``bnfold``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bnfold.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
