import os
import sys
from pathlib import Path

# Stable, wide terminal for CLI output assertions.
os.environ.setdefault("COLUMNS", "200")
os.environ.setdefault("TERM", "dumb")
sys.path.insert(0, str(Path(__file__).resolve().parent))
