"""docs/figures.py draws the five figures the docs pages show, so they can be regenerated."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["im2col.png", "conv_input_grad.png", "maxpool_tie.png", "lstm_bptt.png",
         "adadelta.png"]
PNG = b"\x89PNG\r\n\x1a\n"


def test_figures_script_draws_every_figure(tmp_path):
    pytest.importorskip("matplotlib")
    run = subprocess.run([sys.executable, str(ROOT / "docs" / "figures.py"), str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    for name in NAMES:
        path = tmp_path / name
        assert path.exists(), f"docs/figures.py did not write {name}"
        assert path.read_bytes()[:8] == PNG, f"{name} is not a PNG"
        assert path.stat().st_size < 150 * 1024, f"{name} is larger than 150 KiB"


def test_the_checked_in_figures_are_the_ones_the_pages_name():
    for name in NAMES:
        path = ROOT / "docs" / "img" / name
        assert path.exists() and path.read_bytes()[:8] == PNG, f"docs/img/{name} is missing"
