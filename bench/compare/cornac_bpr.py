"""cornac's BPR on exactly fastmf's ml-latest-small split, evaluated by cornac itself.

    pip install cornac   # not a fastmf dependency; use a throwaway environment
    python3 bench/compare/cornac_bpr.py [--seeds 1,2,3,4,5]

The 90/10 random split (seed 42) comes from fastmf; cornac trains on the training
ratings >= 4 with the ML-32M report's k, learning rate, regularisation and epochs (cornac
has no learning-rate decay and its own initialisation) and ranks only the items it knows
(exclude_unknowns), the protocol of :mod:`fastmf.metrics.ranking`.
"""

import argparse

import numpy as np
from cornac.eval_methods import BaseMethod
from cornac.eval_methods.base_method import ranking_eval
from cornac.metrics import AUC, NDCG
from cornac.models import BPR

from fastmf.data_prep.dataset import load_dataset
from fastmf.data_prep.splits import make_split


def triples(data, threshold=None):
    users = data.user_map.ids[data.user_of_entry].astype(str)
    items = data.item_map.ids[data.indices].astype(str)
    keep = np.ones(data.n_ratings, bool) if threshold is None else data.data >= threshold
    return list(zip(users[keep].tolist(), items[keep].tolist(), data.data[keep].astype(float).tolist()))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="1,2,3,4,5")
    args = ap.parse_args()
    split = make_split(load_dataset(), "random", 0.1, 42)
    train, test = triples(split.train, 4.0), triples(split.test)
    scores = []
    for seed in (int(s) for s in args.seeds.split(",")):
        ev = BaseMethod.from_splits(
            train_data=train, test_data=test, exclude_unknowns=True, rating_threshold=4.0, seed=seed, verbose=False
        )
        model = BPR(k=64, max_iter=50, learning_rate=0.05, lambda_reg=0.001, seed=seed, verbose=False)
        model.fit(ev.train_set)
        avg, _ = ranking_eval(
            model, [AUC(), NDCG(k=10)], ev.train_set, ev.test_set, rating_threshold=4.0, exclude_unknowns=True
        )
        scores.append(avg)
        print(f"seed {seed}: AUC {avg[0]:.4f}  NDCG@10 {avg[1]:.4f}", flush=True)
    a = np.array(scores)
    print(f"mean: AUC {a[:, 0].mean():.4f}  NDCG@10 {a[:, 1].mean():.4f}")
