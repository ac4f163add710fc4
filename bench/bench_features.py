"""Feature-model epoch benchmark against plain ALS on the synthetic ml-32m shape (pytest-benchmark).

Run from the repository root (not part of the default test run):

    python3 -m pytest bench/bench_features.py -p no:cacheprovider --benchmark-only

``FASTMF_BENCH_SCALE`` (default 1.0) shrinks the shape; ``FASTMF_BENCH_CACHE`` moves
the generated data (its planted genres are the item features). ALS and the feature
model (``fastmf.models.features.FeatureALS``) run in fresh subprocesses through the worker of
``fastmf bench`` at the same D and thread count; the record of each, the ratio of their
median epoch times and the feature step's own seconds go to ``benchmark.extra_info``.
Target: a feature-model epoch within 1.2x of an ALS epoch (D = 20, all cores, full shape).
The same comparison from the command line: ``fastmf bench --model features --factors 20``.
"""

from __future__ import annotations

import os
import sys

import pytest

from fastmf.drivers import bench as B

SCALE = float(os.environ.get("FASTMF_BENCH_SCALE", "1.0"))
TARGET_RATIO = 1.2


@pytest.fixture(scope="module")
def folder():
    return B.synthetic_folder(SCALE)


def _config(model, folder, factors):
    return {
        "model": model,
        "backend": "numba",
        "threads": None,
        "data": folder,
        "scale": SCALE,
        "epochs": 6,
        "params": {"factors": factors},
    }


@pytest.mark.parametrize("factors", [20])
def test_feature_epoch_vs_als(benchmark, folder, factors):
    als = B.run_subprocess(_config("als", folder, factors))
    feat = benchmark.pedantic(B.run_subprocess, args=(_config("features", folder, factors),), rounds=1, iterations=1)
    ratio = feat["epoch_seconds"] / als["epoch_seconds"]
    benchmark.extra_info.update(
        {
            "features": feat,
            "als": als,
            "vs_als": ratio,
            "target_ratio": TARGET_RATIO,
            "feature_seconds": feat.get("last_feature_seconds"),
        }
    )
    sys.stderr.write(
        f"\nfeatures vs als epoch time at D={factors}: {ratio:.3f}x "
        f"(feature step {feat.get('last_feature_seconds', 0.0):.4f} s)\n"
    )
    assert feat["ratings"] == als["ratings"] > 0
    assert ratio < TARGET_RATIO
