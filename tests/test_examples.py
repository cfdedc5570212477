"""The examples run as written."""
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("name", ["first_example.py", "second_example.py"])
def test_example_runs(name, tmp_path):
    out = subprocess.run([sys.executable, str(EXAMPLES / name), str(tmp_path / "run")],
                         capture_output=True, text=True, check=True).stdout
    assert "f1_weighted" in out
