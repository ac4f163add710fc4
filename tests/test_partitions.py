"""The partitioned layout (``fastmf prepare --partitions N``, ``fastmf synth --partitions N``): exact round
trips, blocks that hold every rating once, the split's random stream reproduced piecewise, hostile folders."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastmf
from fastmf.common.errors import FastMFError, InputError
from fastmf.data_prep import splits
from fastmf.data_prep.dataset import embedded_path
from fastmf.data_prep.partitions import open_partitions, read_block, read_ids
from fastmf.data_prep.prepare import prepare
from fastmf.data_prep.splits import below_at, random_split, stream_below, stream_values
from fastmf.data_prep.synth import SynthConfig, generate, write_synth_partitioned


@pytest.fixture(scope="module")
def parts3(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("parts") / "ml3"
    prepare(embedded_path(), str(out), partitions=3)
    return out


def test_a_partitioned_folder_loads_as_the_data_it_was_written_from(parts3, embedded):
    back = fastmf.load_dataset(str(parts3))
    for name in ("indptr", "indices", "data", "timestamps", "feature_indptr", "feature_indices"):
        assert np.array_equal(getattr(back, name), getattr(embedded, name)), name
    assert np.array_equal(back.user_map.ids, embedded.user_map.ids)
    assert np.array_equal(back.item_map.ids, embedded.item_map.ids)
    assert back.feature_names == embedded.feature_names
    assert list(back.titles) == list(embedded.titles)


def test_the_blocks_hold_every_rating_once_in_both_orientations(parts3, embedded):
    parts = open_partitions(str(parts3))
    assert parts.count == 3 and parts.n_ratings == embedded.n_ratings
    by_user = [read_block(parts, "users", b) for b in range(3)]
    by_item = [read_block(parts, "items", b) for b in range(3)]
    rows = np.concatenate([b.rows for b in by_user])
    assert np.array_equal(rows, embedded.user_of_entry)
    assert np.array_equal(np.concatenate([b.cols for b in by_user]), embedded.indices)
    entries = np.concatenate([b.entries for b in by_item])
    assert np.array_equal(np.sort(entries), np.arange(embedded.n_ratings))
    for block in by_item:  # each rating where its position in the CSR order says
        assert np.array_equal(embedded.indices[block.entries], block.rows)
        assert np.array_equal(embedded.user_of_entry[block.entries], block.cols)
        assert np.array_equal(embedded.data[block.entries], block.ratings)
        assert (block.rows >= block.start).all() and (block.rows < block.stop).all()
    assert np.array_equal(read_ids(parts, "users"), embedded.user_map.ids)


def test_the_split_stream_is_reproduced_piecewise(embedded):
    n = embedded.n_ratings
    full = np.random.default_rng(42).random(n)
    assert np.array_equal(stream_values(42, 1000, 5000), full[1000:6000])
    positions = np.random.default_rng(0).permutation(n)[:20_000]
    assert np.array_equal(below_at(42, positions, 0.1), full[positions] < 0.1)
    assert np.array_equal(stream_below(42, 1000, 5000, 0.3), full[1000:6000] < 0.3)
    split = random_split(embedded, 0.1, 42)
    assert split.test.n_ratings == int((full < 0.1).sum())


def test_the_split_is_drawn_in_chunks(embedded, monkeypatch):
    """Chunks smaller than the stream (as a block of 32 M ratings meets them) give the same masks."""
    monkeypatch.setattr(splits, "STREAM_CHUNK", 777)
    full = np.random.default_rng(7).random(embedded.n_ratings)
    positions = np.random.default_rng(1).permutation(embedded.n_ratings)[:5_000]
    assert np.array_equal(below_at(7, positions, 0.2), full[positions] < 0.2)
    assert np.array_equal(stream_below(7, 333, 10_000, 0.2), full[333:10_333] < 0.2)


def test_a_partitioned_synthetic_set_has_the_ratings_of_the_whole_one(tmp_path):
    cfg = SynthConfig.scaled(0.002)
    whole = generate(cfg)
    stats = write_synth_partitioned(str(tmp_path / "s"), cfg, 3, chunk_ratings=7000)
    assert stats["ratings"] == whole.stats["ratings"] and stats["oracle_rmse"] == pytest.approx(
        whole.stats["oracle_rmse"], rel=1e-12
    )
    back = fastmf.load_dataset(str(tmp_path / "s"))
    ref = fastmf.Dataset.from_arrays(whole.user_ids, whole.item_ids, whole.ratings)
    for name in ("indptr", "indices", "data"):
        assert np.array_equal(getattr(back, name), getattr(ref, name)), name


def test_partition_counts_outside_the_range_are_refused(tmp_path):
    for bad in (0, -1, 700):
        with pytest.raises(FastMFError, match="--partitions must be a whole number from 1 to 610"):
            prepare(embedded_path(), str(tmp_path / "x"), partitions=bad)
    assert not (tmp_path / "x").exists()


def _copy(parts3, tmp_path) -> Path:
    dest = tmp_path / "copy"
    shutil.copytree(parts3, dest)
    return dest


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _run(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "fastmf"), *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


@pytest.mark.parametrize(
    "damage, message",
    [
        ("missing", "missing partition file"),
        ("truncated", "where the manifest says"),
        ("flipped", "SHA-256 differs from the manifest"),
        ("bounds", "partitions.user_bounds"),
        ("count", "partitions.count"),
        ("ids", "missing id map"),
    ],
)
def test_a_damaged_partitioned_folder_is_refused_with_one_line(parts3, tmp_path, damage, message):
    folder = _copy(parts3, tmp_path)
    # a local load reads the user blocks only; a cluster also reads the item blocks (their checks are the same)
    part = folder / ("by_user" if damage == "flipped" else "by_item") / "part-00001.parquet"
    if damage == "missing":
        part.unlink()
    elif damage == "truncated":
        part.write_bytes(part.read_bytes()[:-100])
    elif damage == "flipped":
        data = bytearray(part.read_bytes())
        data[len(data) // 2] ^= 0xFF
        part.write_bytes(bytes(data))
    elif damage in ("bounds", "count"):
        manifest = _manifest(folder)
        if damage == "bounds":
            manifest["partitions"]["user_bounds"][1] = 10_000
        else:
            manifest["partitions"]["count"] = "three"
        (folder / "manifest.json").write_text(json.dumps(manifest))
    else:
        (folder / "user_ids.parquet").unlink()
    with pytest.raises(InputError, match=message):
        parts = open_partitions(str(folder))
        for side in ("users", "items"):
            for b in range(parts.count):
                read_block(parts, side, b)
    result = _run("info", str(folder), cwd=tmp_path)
    assert result.returncode == 1 and message.split(" ")[0] in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("fastmf: error: ")


def test_a_block_whose_contents_lie_is_refused_even_with_a_matching_checksum(parts3, tmp_path):
    import hashlib

    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = _copy(parts3, tmp_path)
    rel = "by_user/part-00002.parquet"
    table = pq.read_table(folder / rel)
    items = table["item"].to_numpy().copy()
    items[5], items[6] = items[6], items[5]  # breaks the (user, item) order
    pq.write_table(table.set_column(1, "item", pa.array(items, pa.int32())), folder / rel)
    manifest = _manifest(folder)
    data = (folder / rel).read_bytes()
    manifest["partitions"]["files"][rel] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="not sorted by \\(user, item\\)"):
        read_block(open_partitions(str(folder)), "users", 2)


def test_prepare_and_synth_take_partitions_on_the_command_line(tmp_path):
    result = _run("synth", "s", "--scale", "0.002", "--partitions", "2", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ratings"] == 64000
    result = _run("prepare", "s", "p", "--partitions", "3", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["partitions"]["count"] == 3
    assert sorted(os.listdir(tmp_path / "p" / "by_item")) == [f"part-0000{b}.parquet" for b in range(3)]
    result = _run("synth", "s2", "--scale", "0.002", "--partitions", "2", "--csv", cwd=tmp_path)
    assert result.returncode == 1 and "--csv" in result.stderr
