"""Running the real `evoforge` command line in a subprocess, as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def evoforge(*args: str, cwd: Path | None = None, timeout: float = 300, **popen) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runs.cli", *map(str, args)], cwd=cwd or REPO, capture_output=True,
                          text=True, timeout=timeout, **popen)
