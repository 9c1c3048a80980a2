import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("COLUMNS", "200")


@pytest.fixture(autouse=True)
def _fixed_terminal(monkeypatch):
    # Rich wraps to the terminal width; a fixed width keeps CLI output stable.
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")
