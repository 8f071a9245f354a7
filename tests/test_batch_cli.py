"""`talkanim batch` options, through the command line, checked on the files they leave:
`--shard K/N` splits a collection without overlap or gap, `--overwrite` redoes what exists and
its absence keeps it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.content import EXAMPLES, read_frames, run_cli, write_video


@pytest.fixture(scope="module")
def driver(tmp_path_factory) -> Path:
    """Five frames of the example clip, no sound."""
    return write_video(tmp_path_factory.mktemp("drv") / "five.mp4", read_frames(EXAMPLES / "driver.mp4")[:5], 25)


@pytest.fixture(scope="module")
def portraits(tmp_path_factory, astronaut) -> Path:
    """Five portraits of the astronaut, each a little different, 256 px."""
    folder = tmp_path_factory.mktemp("portraits")
    base = Image.fromarray(astronaut).resize((256, 256), Image.LANCZOS)
    base.save(folder / "a.png")
    base.transpose(Image.FLIP_LEFT_RIGHT).save(folder / "b.png")
    Image.fromarray(np.clip(np.asarray(base) * 1.1, 0, 255).astype(np.uint8)).save(folder / "c.jpg")
    Image.fromarray(astronaut[:400, 50:450]).resize((240, 240), Image.LANCZOS).save(folder / "d.png")
    base.rotate(5).save(folder / "e.png")
    return folder


def batch(driver: Path, portraits: Path, out: Path, *options) -> dict[str, dict]:
    """Run `talkanim batch --json`; the printed items by source file name."""
    proc = run_cli("batch", driver, portraits, "-o", out, "--json", "--no-audio", *options)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    return {Path(item["source"]).name: item for item in map(json.loads, proc.stdout.decode().splitlines())}


def test_shards_split_a_collection_without_overlap_or_gap(tmp_path, driver, portraits):
    """`--shard 0/2` and `--shard 1/2` into one folder: each portrait is rendered by exactly one
    shard (every 2nd of the sorted list, starting at K), and together they leave the videos one
    unsharded batch leaves."""
    out = tmp_path / "out"
    shards = [batch(driver, portraits, out, "--shard", f"{k}/2") for k in (0, 1)]
    names = sorted(p.name for p in portraits.iterdir())
    assert sorted(shards[0]) == names[0::2] and sorted(shards[1]) == names[1::2]
    assert not set(shards[0]) & set(shards[1])
    assert all(item["status"] == "ok" for shard in shards for item in shard.values())
    written = sorted(p.name for p in out.iterdir())
    whole = batch(driver, portraits, tmp_path / "whole")
    assert written == sorted(p.name for p in (tmp_path / "whole").iterdir()) and len(written) == len(names)
    assert sorted(Path(item["output"]).name for shard in shards for item in shard.values()) == written
    for name in written:  # the same videos, not just the same names
        sharded, unsharded = read_frames(out / name).astype(int), read_frames(tmp_path / "whole" / name).astype(int)
        assert sharded.shape == unsharded.shape and len(sharded) == 5
        assert np.abs(sharded - unsharded).mean() < 0.5
    assert all(item["status"] == "ok" for item in whole.values())


def test_overwrite_redoes_existing_outputs_and_its_absence_keeps_them(tmp_path, driver, portraits):
    """An output that exists is kept as it is (even a broken one) unless `--overwrite`, which
    renders it again."""
    single = tmp_path / "one"
    single.mkdir()
    (single / "a.png").write_bytes((portraits / "a.png").read_bytes())
    out = tmp_path / "out"
    first = batch(driver, single, out)["a.png"]
    target = Path(first["output"])
    assert first["status"] == "ok" and read_frames(target).shape[0] == 5
    target.write_bytes(b"not a video: left by something else")
    stamp = target.stat().st_mtime_ns

    kept = batch(driver, single, out)["a.png"]
    assert kept["status"] == "skipped"
    assert target.read_bytes() == b"not a video: left by something else" and target.stat().st_mtime_ns == stamp

    redone = batch(driver, single, out, "--overwrite")["a.png"]
    assert redone["status"] == "ok" and redone["frames"] == 5
    assert target.stat().st_mtime_ns > stamp and read_frames(target).shape[0] == 5
