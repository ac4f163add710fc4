"""BPR ranking quality on ml-latest-small over model seeds (the README's BPR table).

    python3 bench/compare/bpr_seeds.py [--threads 1] [--seeds 1,2,3,4,5]

Fixed 90/10 random split (seed 42), positives = ratings >= 4, uniform negatives; prints
mean and sd of AUC, NDCG@10 and P@10 per setting. One thread makes each run reproducible.
"""

import argparse

import numpy as np

from fastmf.common.threads import set_threads
from fastmf.data_prep.dataset import load_dataset
from fastmf.data_prep.splits import make_split
from fastmf.models.bpr import BPR

SETTINGS = {
    "report settings": {},
    "cornac's start (init_std 0.0045, decay 1)": {"init_std": 0.0045, "decay": 1.0},
    "reg 0.01, 100 epochs": {"reg": 0.01, "epochs": 100},
    "reg 0.01, lr 0.1, 200 epochs": {"reg": 0.01, "lr": 0.1, "epochs": 200},
}

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seeds", default="1,2,3,4,5")
    args = ap.parse_args()
    set_threads(args.threads)
    split = make_split(load_dataset(), "random", 0.1, 42)
    for label, params in SETTINGS.items():
        rows = []
        for seed in (int(s) for s in args.seeds.split(",")):
            report = BPR(random_state=seed, **params).fit(split.train).evaluate(split.test)
            rows.append((report["auc"], report["ndcg@10"], report["precision@10"]))
        a = np.array(rows)
        print(
            f"{label:<45} AUC {a[:, 0].mean():.4f} ± {a[:, 0].std(ddof=1):.4f}  "
            f"NDCG@10 {a[:, 1].mean():.4f} ± {a[:, 1].std(ddof=1):.4f}  P@10 {a[:, 2].mean():.4f}"
        )
