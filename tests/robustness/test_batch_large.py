"""A 200-portrait batch with 10 % bad files (issue 7's acceptance test). Slow: TALKANIM_SLOW=1."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from rb_helpers import run_cli, stderr_of


@pytest.mark.slow
def test_200_portraits_10_percent_bad(astronaut, faceless, driver_5f, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    base = Image.fromarray(astronaut).resize((192, 192), Image.LANCZOS)
    for i in range(180):  # small variations: brightness, mirror, a few pixels of shift
        img = ImageEnhance.Brightness(base).enhance(0.8 + 0.4 * (i % 10) / 9)
        img = ImageOps.mirror(img) if i % 2 else img
        img = ImageOps.expand(img, border=(i % 5, i % 3, 0, 0), fill=(128, 128, 128))
        img.save(folder / f"ok{i:03d}.png")
    bad = set()
    png = (folder / "ok000.png").read_bytes()
    for i in range(7):
        (folder / f"bad_corrupt{i}.png").write_bytes(png[: 200 + 50 * i])
        (folder / f"bad_text{i}.jpg").write_text("not a picture\n")
        bad |= {f"bad_corrupt{i}.png", f"bad_text{i}.jpg"}
    for i in range(6):
        Image.open(faceless).save(folder / f"bad_noface{i}.png")
        bad.add(f"bad_noface{i}.png")
    assert len(list(folder.iterdir())) == 200 and len(bad) == 20

    out = tmp_path / "out"
    started = time.perf_counter()
    proc = run_cli("batch", driver_5f, folder, "-o", out, "--workers", "2", "--json", "-q", timeout=1800)
    first = time.perf_counter() - started
    assert proc.returncode == 1, stderr_of(proc)
    assert "Traceback" not in stderr_of(proc)
    items = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert len(items) == 200
    failed = {Path(i["source"]).name for i in items if i["status"] == "failed"}
    assert failed == bad
    assert all(i.get("error") and "\n" not in i["error"] for i in items if i["status"] == "failed")
    assert sum(i["status"] == "ok" for i in items) == 180
    assert sorted(p.name for p in out.iterdir() if ".tmp" in p.name) == []
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert len(mtimes) == 180

    started = time.perf_counter()
    proc = run_cli("batch", driver_5f, folder, "-o", out, "--workers", "2", "--json", "-q", timeout=1800)
    second = time.perf_counter() - started
    assert proc.returncode == 1, stderr_of(proc)  # the bad ones are still bad
    items = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    statuses = {Path(i["source"]).name: i["status"] for i in items}
    assert {n for n, s in statuses.items() if s == "failed"} == bad
    assert sum(s == "skipped" for s in statuses.values()) == 180
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes  # nothing redone
    print(f"200-item batch: {first:.0f} s, rerun {second:.0f} s")
