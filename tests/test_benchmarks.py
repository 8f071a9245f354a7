"""The benchmark harness runs (quick mode) and reports every row with sane numbers.

Not a timing assertion: a shared CI machine is too noisy for that. PERFORMANCE.md holds the
figures of a full run (`python -m benchmarks`).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def report() -> dict:
    res = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--json"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout)


def test_every_row_is_reported(report):
    from benchmarks.run import ROW_KEYS

    keys = [row["key"] for row in report["rows"]]
    assert keys == list(ROW_KEYS)
    for row in report["rows"]:
        assert row["name"] and row["unit"] and row["target"]


def test_numbers_are_positive_and_finite(report):
    for row in report["rows"]:
        if row["key"] == "track_fan" and row["value"] is None:
            assert row["note"].startswith("skipped")  # FAN needs its weights and a GPU
            continue
        for field in ("value", "reference", "cpu_s"):
            x = row[field]
            if x is None and field != "value":
                continue
            assert isinstance(x, (int, float)) and math.isfinite(x) and x > 0, (row["key"], field, x)
    meta = report["meta"]
    assert meta["quick"] is True and meta["floor_wall_s"] > 0 and meta["floor_cpu_s"] > 0


def test_markdown_table_has_every_row(report):
    from benchmarks.run import Row, markdown

    text = markdown([Row(**row) for row in report["rows"]], report["meta"])
    assert "load average" in text
    assert text.count("\n| ") == len(report["rows"]) + 1  # header + one line per row
