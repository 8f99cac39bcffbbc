"""Where the browser tests find Debian's chromium and put their screenshots."""

from __future__ import annotations

import os
from pathlib import Path

CHROMIUM = Path(os.environ.get("STATEHUB_CHROMIUM", "/usr/bin/chromium"))
OUTPUT = Path(__file__).resolve().parents[2] / "test-output"
"""Screenshots land here (ignored by git); look at them after a run."""
