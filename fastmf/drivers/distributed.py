"""Training on a Dask cluster (issue 16): ALS, bias-only, the feature model and VI by blocks, BPR by DSGD.

The layout is Spark MLlib's block ALS with fastmf's kernels. A partitioned prepared folder
(``fastmf prepare SOURCE OUT --partitions N``, :mod:`fastmf.data_prep.partitions`) holds the
ratings by user block and by item block. Every block is loaded **by a worker** (a task,
:func:`load_block`, that any worker can rerun from the folder: a worker that dies takes nothing
with it that the scheduler cannot recompute); the client never holds the rating table, only
the manifest, the id maps and the parameters (``O((users + items) D)``).

Each half-sweep sends the other side's factors and biases (VI: its posteriors' packed rows, or
means, variances and biases) to the workers, once per worker, as tasks holding them (so they
too are recomputable), and each block's own rows; the worker runs the model's half-sweep kernel
(:func:`fastmf.kernels.als.half_sweep`, :func:`fastmf.models.vi.gather_sweep`: what a local fit
runs) on its block and returns the block's new rows. Every entity's update is exact given the
other side, so the result is the local fit's: same seed and split, same factors up to float
rounding. The training state is the model's own (:class:`~fastmf.models.als.ALSState`,
:class:`~fastmf.models.features.FeatureState`, :class:`~fastmf.models.vi.VIState`) with its
half-sweeps sent to the cluster (:class:`ClusterSweeps`): initialisation, the feature step, the
hyperparameter updates, the objective and the fitted attributes are the local code's.

BPR (:class:`ClusterDSGD`) runs as stratified SGD (Gemulla et al. 2011): ``P`` user blocks,
``P`` item groups drawn at random each epoch, ``P`` sub-epochs of ``P`` disjoint strata, each
stratum the existing Hogwild kernel on its positives with negatives from its item group.

Progress records hold ``bytes_moved`` (the arrays sent to and returned by the workers in the
epoch, each broadcast counted once per worker) and ``metrics_seconds``, besides the local
records' fields. With ``checkpoint`` the state is written every ``checkpoint_every`` epochs
(atomically, no pickle) and ``resume`` continues from it.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass

import numpy as np

from fastmf.common.errors import DivergenceError, FastMFError
from fastmf.common.layout import bias_rows, split_bias_rows
from fastmf.common.threads import n_threads, set_threads
from fastmf.data_prep.dataset import IdMap, _item_metadata
from fastmf.data_prep.partitions import open_partitions, read_block, read_ids
from fastmf.data_prep.prepared import read_parquet, release_arrow
from fastmf.data_prep.splits import below_at, stream_below
from fastmf.metrics.rating import rmse
from fastmf.models.als import ALSFamily, ALSState, ridge_scale, work_blocks
from fastmf.models.backend import backend_of
from fastmf.models.base import widened_scale
from fastmf.models.bpr import BPR, BPRState, share_below
from fastmf.models.features import FeatureState
from fastmf.models.vi import VI, Posterior, VIState, gather_sweep

#: the models :func:`fit` trains (their ``kind``)
SUPPORTED = ("als", "bias", "features", "vi", "bpr")
CHECKPOINT_FILE = "checkpoint.npz"
CHECKPOINT_META = "checkpoint.json"


# --------------------------------------------------------------------------- worker side


@dataclass
class Block:
    """One block's ratings on a worker: training and test ratings as CSR over the block's rows
    ``start..stop`` (local row indices; columns are the other side's global indices)."""

    side: str
    start: int
    stop: int
    train: tuple
    test: tuple

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.train + self.test)

    def __sizeof__(self) -> int:
        """The arrays' bytes: what Dask's ``sizeof`` (``sys.getsizeof`` for an unknown type) reports to the
        scheduler, which then keeps a block's tasks where the block is instead of copying it to an idle worker
        (it would believe a block costs nothing to move)."""
        return self.nbytes + 256


def _local_csr(rows: np.ndarray, cols: np.ndarray, ratings: np.ndarray, start: int, stop: int) -> tuple:
    """CSR of rows ``start..stop`` (local row pointers) from sorted (row, col, rating) arrays the caller
    owns (they become the CSR's indices and values, not copied)."""
    counts = np.bincount(rows - start, minlength=stop - start)
    indptr = np.zeros(stop - start + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr, cols, ratings


def load_block(folder: str, side: str, b: int, test_frac: float, seed: int) -> Block:
    """Block ``b`` of ``side`` read from the folder and split as :func:`fastmf.data_prep.splits.random_split`
    splits the whole table (each rating to test with probability ``test_frac``, by its CSR position).

    Memory beyond the block's own arrays stays near one copy of its ratings as read: the test mask is
    drawn as booleans in chunks, each part's arrays are selected once (their own memory, out of
    Arrow's buffers) and the read table is dropped before returning."""
    parts = open_partitions(folder)
    read = read_block(parts, side, b)
    n = read.rows.shape[0]
    if test_frac <= 0:  # no split: the block as read, copied out of Arrow's buffers
        train = test = None
    else:
        test = (
            stream_below(seed, parts.offset(b), n, test_frac)
            if side == "users"
            else below_at(seed, read.entries, test_frac)
        )
        train = ~test
    read.entries = None  # the positions were only needed for the split

    def part(mask):
        if mask is None:
            return _local_csr(read.rows, read.cols.copy(), read.ratings.copy(), read.start, read.stop)
        return _local_csr(read.rows[mask], read.cols[mask], read.ratings[mask], read.start, read.stop)

    train_part = part(train)
    train = None
    test_part = part(np.zeros(n, dtype=bool)) if test is None else part(test)
    block = Block(side, read.start, read.stop, train_part, test_part)
    read = test = None
    release_arrow()  # what reading and checking the file took: a worker's memory is its blocks
    return block


def block_summary(block: Block) -> dict:
    """What the client needs of a block: training ratings per row, their float64 sum, extremes, test count."""
    data = block.train[2]
    return {
        "counts": np.diff(block.train[0]),
        "sum": float(data.sum(dtype=np.float64)),
        "n": int(data.shape[0]),
        "extremes": (float(data.min()), float(data.max())) if data.size else None,
        "n_test": int(block.test[2].shape[0]),
        "bytes": block.nbytes,
    }


def block_pattern(block: Block) -> tuple:
    """The block's training (row, column) pattern: local row pointers and column indices."""
    return block.train[0], block.train[1]


def _threads(threads: int) -> None:
    """Numba's thread count is per calling thread: every task sets it (0: the worker's own thread count)."""
    if not threads:
        try:
            from distributed import get_worker

            threads = get_worker().state.nthreads
        except (ImportError, ValueError, AttributeError):
            threads = 0
    set_threads(threads)


def als_sweep(
    block: Block, own_factors, own_bias, other_factors, other_bias, prior_mean, prior_bias, params: dict
) -> tuple:
    """The half-sweep kernel of the model on one block: the block's rows' new factors and biases."""
    _threads(params["threads"])
    backend = backend_of(params["backend"])
    factors, bias = np.array(own_factors, copy=True), np.array(own_bias, copy=True)
    indptr = block.train[0]
    backend.als.half_sweep(
        *block.train,
        params["mu"],
        bias,
        other_bias,
        factors,
        other_factors,
        params["lam"],
        params["gamma"],
        params["tau"],
        work_blocks(indptr, factors.shape[1], params["work_split"]),
        params["fit_bias"],
        prior_mean,
        prior_bias,
        ridge_scale(indptr, params["reg_scaling"]),
        params["cg_steps"],
    )
    return factors, bias


#: the arrays of one side's posteriors a VI half-sweep updates
VI_OWN = ("mean", "cov", "bias", "logdet", "rows")


def vi_sweep(block: Block, own: dict, other: dict, params: dict) -> dict:
    """The VI half-sweep of the block's entities (:func:`fastmf.models.vi.gather_sweep`: the kernel a local fit
    runs for users; for items it gathers the users' packed rows where a local fit scatters them): their new
    posterior arrays and their shares ``esse`` of the expected squared error."""
    _threads(params["threads"])
    backend = backend_of(params["backend"])
    indptr = block.train[0]
    scale = ridge_scale(indptr, params["reg_scaling"])
    mine = Posterior.of(
        **{k: np.array(own[k], copy=True) for k in VI_OWN if own.get(k) is not None},
        esse=np.zeros(indptr.shape[0] - 1),
        prior_scale=np.zeros(0) if scale is None else scale,
    )
    d = mine.mean.shape[1]
    gather_sweep(
        backend,
        block.train,
        params["mu"],
        mine,
        Posterior.of(**other),
        params["lam"],
        params["gamma"],
        params["tau"],
        work_blocks(indptr, d),
        params["full"],
    )
    return {k: getattr(mine, k) for k in VI_OWN + ("esse",) if getattr(mine, k) is not None}


def _positive(block: Block, threshold) -> np.ndarray:
    data = block.train[2]
    return np.ones(data.shape[0], dtype=bool) if threshold is None else data >= threshold


def positive_summary(block: Block, threshold) -> np.ndarray:
    """Positives (training ratings ``>= threshold``) per row of the block."""
    keep = _positive(block, threshold)
    rows = np.repeat(np.arange(block.stop - block.start), np.diff(block.train[0]))
    return np.bincount(rows[keep], minlength=block.stop - block.start)


def positive_pattern(block: Block, threshold) -> tuple:
    keep = _positive(block, threshold)
    rows = np.repeat(np.arange(block.stop - block.start), np.diff(block.train[0]))
    return np.bincount(rows[keep], minlength=block.stop - block.start), block.train[1][keep]


def bpr_stratum(
    block: Block, user_factors, item_factors, item_bias, sampled, group, weights, params: dict, stream: int
) -> tuple:
    """One DSGD stratum: the existing BPR kernel (:func:`fastmf.kernels.bpr.hogwild_epoch`) on the positives
    of user block ``block`` whose items are in ``group`` (ascending item indices; ``item_factors`` and
    ``item_bias`` are their rows), negatives drawn within the group (uniformly, or by ``weights``). Returns
    the new user, item and item-bias rows, the loss sum and the triples drawn."""
    _threads(params["threads"])
    backend = backend_of(params["backend"])
    indptr, cols, _ = block.train
    keep = _positive(block, params["threshold"])
    pos = np.minimum(np.searchsorted(group, cols), max(group.shape[0] - 1, 0))
    inside = keep & (group[pos] == cols) if group.shape[0] else np.zeros_like(keep)
    rows = np.repeat(np.arange(block.stop - block.start), np.diff(indptr))
    counts = np.bincount(rows[inside], minlength=block.stop - block.start)
    sub_ptr = np.zeros(counts.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=sub_ptr[1:])
    sub_idx = pos[inside].astype(np.int32)
    u = np.array(user_factors, copy=True)
    n_samples = int(counts[sampled].sum())
    if n_samples == 0 or len(item_factors) < 2:
        return u, np.array(item_factors, copy=True), np.array(item_bias, copy=True), 0.0, 0
    item_rows = bias_rows(np.asarray(item_factors), np.asarray(item_bias))
    build_alias = backend.sampling.build_alias
    user_prob, user_alias = build_alias(np.where(sampled, counts, 0).astype(np.float64))
    if params["popularity"]:
        neg_prob, neg_alias = build_alias(np.asarray(weights, dtype=np.float64))
    else:
        neg_prob, neg_alias = np.ones(1), np.zeros(1, dtype=np.int32)
    loss = np.zeros(n_threads())
    backend.bpr.hogwild_epoch(
        sub_ptr,
        sub_idx,
        user_prob,
        user_alias,
        u,
        item_rows,
        params["lr"],
        params["reg"],
        params["fit_bias"],
        n_samples,
        params["seed"],
        stream,
        loss.size,
        neg_prob,
        neg_alias,
        params["popularity"],
        share_below(np.bincount(sub_idx, minlength=item_rows.shape[0])),
        backend.bpr.member_filter(sub_ptr, sub_idx, item_rows.shape[0]),
        loss,
    )
    v, b = split_bias_rows(item_rows, u.shape[1])
    return u, v.copy(), b.copy(), float(loss.sum()), n_samples


def block_errors(block: Block, own_factors, own_bias, other_factors, other_bias, params: dict) -> tuple:
    """Squared errors of the block's training ratings (of the scores and of the predicted ratings, the
    scores clipped to ``params["bounds"]``) and of its test ratings' predictions (the prediction is
    symmetric in the sides)."""
    _threads(params["threads"])
    sums = backend_of(params["backend"]).metrics.error_sums
    args = (params["mu"], own_bias, other_bias, own_factors, other_factors, *params["bounds"])
    return (*sums(*block.train, *args), sums(*block.test, *args)[1])


# --------------------------------------------------------------------------- client side


class Skeleton:
    """What a model's training state reads of its training data, without the ratings: row pointers
    by user and by item (``csr``/``csc`` with no indices or values), counts, mean and item features."""

    def __init__(self, user_counts, item_counts, global_mean: float, n_ratings: int, features):
        self.n_users, self.n_items = int(user_counts.shape[0]), int(item_counts.shape[0])
        self.csr = (_indptr(user_counts), None, None)
        self.csc = (_indptr(item_counts), None, None)
        self.indptr = self.csr[0]
        self.global_mean = global_mean
        self.n_ratings = n_ratings
        self.item_counts = np.asarray(item_counts, dtype=np.int64)
        self._features = features

    def item_features(self):
        return self._features


def _indptr(counts) -> np.ndarray:
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


class ClusterSweeps:
    """Mixed into a model's training state: its half-sweeps and error sums run on the cluster (:class:`Runner`)."""

    runner: Runner

    def user_step(self) -> None:
        self.runner.half_sweep(self, "users")

    def item_step(self) -> None:
        self.runner.half_sweep(self, "items")

    def error_sums(self, mat) -> tuple:
        """The training ratings' squared errors (the sums a state takes of ``error_sums(csr)``)."""
        return self.runner.error_sums(self)[:2]

    def metrics(self, train, eval_set) -> dict:
        sse, clipped, sse_test = self.runner.error_sums(self)
        out = {"train_rmse": rmse(clipped, self.runner.n_train)}
        if self.runner.n_test:
            out["test_rmse"] = rmse(sse_test, self.runner.n_test)
        if isinstance(self, VIState):
            out["elbo"] = self.elbo()
            out["lam"] = self.lam
        else:
            out["objective"] = self.objective(sse)
        return out


class ClusterDSGD:
    """Mixed into :class:`~fastmf.models.bpr.BPRState`: an epoch is ``P`` sub-epochs of DSGD on the cluster."""

    runner: Runner

    def epoch(self) -> dict:
        lr = self.learning_rate()
        loss, n = self.runner.dsgd_epoch(self, lr)
        self.epochs_run += 1
        return {"loss": loss / max(n, 1), "lr": lr}

    def metrics(self, train, eval_set) -> dict:
        return {}


def cluster_state_class(base: type, runner: Runner) -> type:
    """``base`` (a training state class) with :class:`ClusterSweeps` in front, sweeping on ``runner``."""
    mixin = ClusterDSGD if issubclass(base, BPRState) else ClusterSweeps
    return type("Cluster" + base.__name__, (mixin, base), {"runner": runner})


class Runner:
    """The blocks on the cluster and the traffic of one fit."""

    def __init__(self, client, folder: str, parts, test_frac: float, seed: int, threads: int):
        self.client = client
        self.parts = parts
        self.threads = int(threads)
        self.bytes = 0
        # user block b and item block b go to worker b mod W, so every worker holds its share of the ratings
        # (left to itself the scheduler may pile many loading tasks on one worker); any other worker may
        # (re)load a block when that one is gone
        workers = sorted(client.scheduler_info(n_workers=-1)["workers"])

        def place(b: int) -> dict:
            return {"workers": [workers[b % len(workers)]], "allow_other_workers": True} if workers else {}

        self.blocks = {
            side: [
                client.submit(
                    load_block,
                    folder,
                    side,
                    b,
                    float(test_frac),
                    int(seed),
                    pure=False,
                    key=f"fastmf-block-{side}-{b}-{os.getpid()}-{id(self)}",
                    **place(b),
                )
                for b in range(parts.count)
            ]
            for side in ("users", "items")
        }
        self.n_train = self.n_test = 0
        self.params: dict = {}
        self._held_users = None
        self._workers = 1

    def count_workers(self) -> None:
        """The workers a broadcast reaches (counted once per epoch)."""
        self._workers = max(1, len(self.client.scheduler_info(n_workers=-1)["workers"]))

    def put(self, array: np.ndarray):
        """``array`` on the cluster, once per worker: a task holding it, so the scheduler can recompute
        it when the worker holding it dies (a scattered array could not be)."""
        self.bytes += array.nbytes * min(self._workers, self.parts.count)
        return self.client.submit(_identity, array, pure=False)

    def submit(self, fn, *args):
        self.bytes += sum(a.nbytes for a in args if isinstance(a, np.ndarray))
        return self.client.submit(fn, *args, pure=False)

    def gather(self, futures):
        results = self.client.gather(futures)
        for r in results:
            self.bytes += sum(a.nbytes for a in r if isinstance(a, np.ndarray))
        return results

    def summaries(self, side: str) -> list:
        return self.client.gather([self.client.submit(block_summary, f, pure=False) for f in self.blocks[side]])

    def pattern(self) -> tuple:
        pieces = self.client.gather([self.client.submit(block_pattern, f, pure=False) for f in self.blocks["users"]])
        indices = np.concatenate([p[1] for p in pieces]) if pieces else np.zeros(0, dtype=np.int32)
        return _indptr(np.concatenate([np.diff(p[0]) for p in pieces])), indices

    def half_sweep(self, state, side: str) -> None:
        if isinstance(state, VIState):
            self._vi_half_sweep(state, side)
        else:
            self._als_half_sweep(state, side)

    def _vi_half_sweep(self, state, side: str) -> None:
        own, other = (state.users, state.items) if side == "users" else (state.items, state.users)
        names = ("rows",) if state.full else ("mean", "cov", "bias")
        held = {k: self.put(getattr(other, k)) for k in names}
        params = {
            "mu": state.mu,
            "lam": state.lam,
            "gamma": state.gamma,
            "tau": state.tau,
            "full": state.full,
            "backend": self.params["backend"],
            "reg_scaling": self.params["reg_scaling"],
            "threads": self.threads,
        }
        bounds = self.parts.bounds(side)
        futures = []
        for b, block in enumerate(self.blocks[side]):
            lo, hi = bounds[b], bounds[b + 1]
            mine = {k: getattr(own, k)[lo:hi] for k in VI_OWN if getattr(own, k) is not None}
            self.bytes += sum(a.nbytes for a in mine.values())
            futures.append(self.client.submit(vi_sweep, block, mine, held, params, pure=False))
        for b, result in enumerate(self.client.gather(futures)):
            lo, hi = bounds[b], bounds[b + 1]
            for k, a in result.items():
                self.bytes += a.nbytes
                getattr(own, k)[lo:hi] = a
        # every rating belongs to exactly one swept entity: their shares are the whole sum
        state.esse = float(np.sum(own.esse))

    def _als_half_sweep(self, state, side: str) -> None:
        users = side == "users"
        own_f, own_b = (state.user_factors, state.user_bias) if users else (state.item_factors, state.item_bias)
        other_f, other_b = (state.item_factors, state.item_bias) if users else (state.user_factors, state.user_bias)
        prior_mean, prior_bias = state._no_prior if users else (state.item_prior_mean, state.item_prior_bias)
        held_f, held_b = self.put(other_f), self.put(other_b)
        if not users:
            self._held_users = (held_f, held_b)
        bounds = self.parts.bounds(side)
        futures = []
        for b, block in enumerate(self.blocks[side]):
            lo, hi = bounds[b], bounds[b + 1]
            futures.append(
                self.submit(
                    als_sweep,
                    block,
                    own_f[lo:hi],
                    own_b[lo:hi],
                    held_f,
                    held_b,
                    prior_mean[lo:hi] if prior_mean.size else prior_mean,
                    prior_bias[lo:hi] if prior_bias.size else prior_bias,
                    self.params,
                )
            )
        for b, (f, bias) in enumerate(self.gather(futures)):
            lo, hi = bounds[b], bounds[b + 1]
            own_f[lo:hi], own_b[lo:hi] = f, bias

    def dsgd_epoch(self, state, lr: float) -> tuple:
        """``P`` sub-epochs of DSGD (Gemulla et al. 2011). The catalogue is cut into ``P`` item groups at
        random, anew every epoch (seeded), so that over the epochs every pair of items meets as positive and
        negative; in sub-epoch ``s`` user block ``p`` trains with group ``(p + s) mod P``: no two concurrent
        strata share a user or an item. Returns the loss sum and the triples drawn."""
        count = self.parts.count
        ubounds = self.parts.user_bounds
        rng = np.random.default_rng([state.seed, state.epochs_run])
        groups = [np.sort(g) for g in np.array_split(rng.permutation(state.items.shape[0]), count)]
        params = {**self.params, "lr": lr}
        total, drawn = 0.0, 0
        for s in range(count):
            futures = []
            for p in range(count):
                g = groups[(p + s) % count]
                u0, u1 = ubounds[p], ubounds[p + 1]
                args = (
                    state.user_factors[u0:u1],
                    state.item_factors[g],
                    state.item_bias[g],
                    state.sampled_users[u0:u1],
                    state.items[g],
                    self.weights[state.items[g]],
                )
                self.bytes += sum(a.nbytes for a in args)
                stream = (state.epochs_run * count + s) * count + p
                futures.append(
                    self.client.submit(bpr_stratum, self.blocks["users"][p], *args, params, stream, pure=False)
                )
            for p, (u, v, b, loss, n) in enumerate(self.client.gather(futures)):
                g = groups[(p + s) % count]
                state.user_factors[ubounds[p] : ubounds[p + 1]] = u
                state.item_factors[g], state.item_bias[g] = v, b
                self.bytes += u.nbytes + v.nbytes + b.nbytes
                total, drawn = total + loss, drawn + n
        return total, drawn

    def error_sums(self, state) -> tuple:
        """Training (scores, predicted ratings) and test (predicted ratings) squared errors, summed over the
        item blocks (the user factors are still on the workers from the item half-sweep)."""
        mu, user_bias, item_bias, user_factors, item_factors = state.arrays()
        held_f, held_b = self._held_users or (self.put(user_factors), self.put(user_bias))
        self._held_users = None
        bounds = self.parts.bounds("items")
        params = {**self.params, "mu": mu, "bounds": state.bounds}
        futures = [
            self.submit(
                block_errors,
                block,
                item_factors[bounds[b] : bounds[b + 1]],
                item_bias[bounds[b] : bounds[b + 1]],
                held_f,
                held_b,
                params,
            )
            for b, block in enumerate(self.blocks["items"])
        ]
        sums = np.asarray(self.client.gather(futures), dtype=np.float64).reshape(-1, 3)
        return tuple(float(x) for x in sums.sum(axis=0))

    def take_bytes(self) -> int:
        out, self.bytes = self.bytes, 0
        return int(out)

    def release(self) -> None:
        self._held_users = None
        for futures in self.blocks.values():
            for f in futures:
                f.release()


def _identity(x):
    return x


def _check_model(model) -> None:
    if getattr(model, "kind", None) not in SUPPORTED or not isinstance(model, (ALSFamily, VI, BPR)):
        raise FastMFError(
            f"distributed training supports the models {', '.join(SUPPORTED)}; "
            f"got '{getattr(model, 'kind', type(model).__name__)}'"
        )
    if getattr(model, "patience", None) is not None:
        raise FastMFError("--patience (early stopping) is not available on a cluster: train a fixed number of epochs")


def fit(
    model,
    dataset_path: str,
    client,
    test_frac: float = 0.1,
    seed: int | None = None,
    callback=None,
    threads: int = 0,
    checkpoint: str | None = None,
    checkpoint_every: int = 1,
    resume: bool = False,
    keep_seen: bool = True,
):
    """Fit ``model`` (ALS, BiasOnly, FeatureALS, VI or BPR, fitted or not) on the partitioned folder
    ``dataset_path`` with the Dask ``client``; returns the model, fitted as a local fit would be.

    The ratings are split as ``fastmf train`` splits them (:func:`fastmf.data_prep.splits.random_split`
    with ``test_frac``, ``seed``: default the model's ``random_state``); each epoch's record holds the
    test RMSE. ``threads``: Numba threads per task (0: the worker's thread count). ``checkpoint``: a
    folder the state is written to every ``checkpoint_every`` epochs; ``resume`` continues from it.
    ``keep_seen``: gather the training pattern (one int32 per rating) so ``recommend`` excludes seen
    items, as a local fit does.
    """
    _check_model(model)
    model._check_params()
    if not 0 <= test_frac < 1:
        raise FastMFError(f"test_frac must be in [0, 1), got {test_frac!r}")
    if checkpoint_every < 1:
        raise FastMFError(f"checkpoint_every must be a whole number >= 1, got {checkpoint_every!r}")
    seed = model.random_state if seed is None else int(seed)
    parts = open_partitions(dataset_path)
    runner = Runner(client, dataset_path, parts, test_frac, seed, threads)
    try:
        return _fit(model, dataset_path, parts, runner, callback, checkpoint, checkpoint_every, resume, keep_seen)
    finally:
        runner.release()


def _fit(model, folder, parts, runner, callback, checkpoint, every, resume, keep_seen):
    start = time.perf_counter()
    users, items = runner.summaries("users"), runner.summaries("items")
    n_train = sum(s["n"] for s in users)
    if n_train == 0:
        raise FastMFError(f"{folder}: no training ratings")
    runner.n_train, runner.n_test = n_train, sum(s["n_test"] for s in users)
    extremes = [s["extremes"] for s in users if s["extremes"] is not None]
    user_counts = np.concatenate([s["counts"] for s in users])
    item_counts = np.concatenate([s["counts"] for s in items])
    user_map, item_map = IdMap(read_ids(parts, "users")), IdMap(read_ids(parts, "items"))
    items_path = os.path.join(folder, "items.parquet")
    items_table = read_parquet(items_path) if os.path.exists(items_path) else None
    titles, fptr, fidx, fnames = _item_metadata(items_table, item_map)
    mu = sum(s["sum"] for s in users) / n_train
    skeleton = Skeleton(user_counts, item_counts, mu, n_train, (fptr, fidx, fnames))

    model._forget()
    model._remember(
        widened_scale(parts.rating_range, (min(e[0] for e in extremes), max(e[1] for e in extremes))),
        user_map,
        item_map,
        item_counts,
        titles,
    )
    model.history_ = []
    model.global_mean_ = mu
    runner.count_workers()
    if isinstance(model, BPR):
        state = _bpr_state(model, runner, parts, user_map, item_map)
    else:
        runner.params = {
            "mu": mu,
            "backend": model.backend,
            "reg_scaling": model.reg_scaling,
            "work_split": getattr(model, "work_split", "balanced"),
            "threads": runner.threads,
        }
        state = model._training_state(skeleton, cluster_state_class(_base_state(model), runner))
        if not isinstance(state, VIState):
            runner.params.update(
                mu=state.mu,
                lam=state.lam,
                gamma=state.gamma,
                tau=state.tau,
                fit_bias=state.fit_bias,
                cg_steps=state.cg_steps,
            )
    first = 1
    if resume:
        first = _resume(model, state, checkpoint, folder) + 1
    runner.take_bytes()
    for epoch in range(first, int(model.epochs) + 1):
        t0 = time.perf_counter()
        runner.count_workers()
        with np.errstate(over="ignore", invalid="ignore"):
            extra = state.epoch()
            record = {"epoch": epoch, "seconds": time.perf_counter() - t0, **extra}
            t1 = time.perf_counter()
            record.update(state.metrics(None, None))
            record["metrics_seconds"] = time.perf_counter() - t1
        record["bytes_moved"] = runner.take_bytes()
        if not state.finite(record):
            model._forget()
            raise DivergenceError(
                f"{model.kind} diverged in epoch {epoch} (non-finite parameters): {state.divergence_hint}"
            )
        model._log(record, callback)
        if checkpoint and (epoch % every == 0 or epoch == int(model.epochs)):
            _save_checkpoint(model, state, checkpoint, folder, epoch)
    if isinstance(model, BPR):
        state.export(model.item_factors_, model.item_bias_)
    else:
        model.best_epoch_ = int(model.epochs)
        model._keep(state)
    if keep_seen:
        model._remember_seen(*runner.pattern())
    else:
        model._remember_seen(np.zeros(len(user_map) + 1, dtype=np.int64), np.zeros(0, dtype=np.int32))
    model.fit_seconds_ = time.perf_counter() - start
    model.compile_seconds_ = 0.0
    return model


def _bpr_state(model, runner: Runner, parts, user_map, item_map):
    """The BPR state (:meth:`BPRState._start`: the local fit's catalogue, sampled users and starting factors)
    from the positives per user and per item counted on the workers; the model adopts it as a local fit does."""
    threshold = model.threshold if model.threshold and parts.rating_range is not None else None
    gather = runner.client.gather
    counts = np.concatenate(
        gather([runner.client.submit(positive_summary, f, threshold, pure=False) for f in runner.blocks["users"]])
    )
    weights = np.concatenate(
        gather([runner.client.submit(positive_summary, f, threshold, pure=False) for f in runner.blocks["items"]])
    )
    if counts.sum() == 0:
        raise FastMFError(
            f"no training ratings >= threshold {model.threshold} "
            "(for implicit data with every rating 1, use threshold 0)"
        )
    backend = backend_of(model.backend)
    state = cluster_state_class(BPRState, runner).__new__(cluster_state_class(BPRState, runner))
    state._start(
        counts,
        weights,
        int(model.factors),
        backend,
        model.random_state,
        model.init_std,
        model.item_bias,
        model.lr,
        model.decay,
        model.reg,
    )
    state.popularity = model.negatives == "popularity"
    runner.weights = weights
    runner.params = {
        "backend": model.backend,
        "threads": runner.threads,
        "threshold": threshold,
        "reg": state.reg,
        "fit_bias": state.fit_bias,
        "seed": state.seed,
        "popularity": state.popularity,
    }
    model._adopt(state, len(user_map), len(item_map))
    pieces = gather([runner.client.submit(positive_pattern, f, threshold, pure=False) for f in runner.blocks["users"]])
    model.positive_indptr_ = _indptr(np.concatenate([p[0] for p in pieces]))
    model.positive_indices_ = np.concatenate([p[1] for p in pieces]).astype(np.int32)
    model.global_mean_ = 0.0
    return state


def _base_state(model) -> type:
    return {"features": FeatureState, "vi": VIState}.get(model.kind, ALSState)


# --------------------------------------------------------------------------- checkpoints


# --------------------------------------------------------------------------- clusters


class Cluster:
    """A Dask client on ``spec``: ``local:N`` starts a LocalCluster of N worker processes (``threads``
    threads each, default 1) for the run; ``tcp://HOST:PORT`` (or ``tls://``) connects to a running
    scheduler. A context manager; ``client``, ``dashboard`` (the dashboard's address or None) and
    ``workers`` (the worker count) once entered."""

    def __init__(self, spec: str, threads: int | None = None, timeout: float = 30.0):
        self.spec, self.threads, self.timeout = str(spec), threads, timeout
        self.n_local = None
        if self.spec.startswith("local:"):
            n = self.spec[len("local:") :]
            if not n.isdigit() or not 1 <= int(n) <= 256:
                raise FastMFError(f"--cluster local:N needs N, a whole number of workers from 1 to 256, got {spec!r}")
            self.n_local = int(n)
        elif not self.spec.startswith(("tcp://", "tls://")) or len(self.spec) <= len("tcp://"):
            raise FastMFError(
                f"--cluster must be local:N (a local cluster of N workers) or tcp://HOST:PORT "
                f"(a running Dask scheduler), got {spec!r}"
            )
        self._cluster = self.client = None

    def __enter__(self) -> Cluster:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise FastMFError("training on a cluster needs Dask: pip install 'fastmf[distributed]'") from None
        try:
            if self.n_local is not None:
                self._cluster = LocalCluster(
                    n_workers=self.n_local,
                    threads_per_worker=self.threads or 1,
                    processes=True,
                    dashboard_address=":0",
                    silence_logs=50,
                )
                self.client = Client(self._cluster)
            else:
                self.client = Client(self.spec, timeout=self.timeout)
        except (OSError, TimeoutError) as exc:
            self.__exit__(None, None, None)
            raise FastMFError(f"cannot reach the Dask scheduler at {self.spec}: {first_words(exc)}") from None
        return self

    @property
    def dashboard(self):
        return getattr(self.client, "dashboard_link", None)

    @property
    def workers(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1)["workers"])

    def __exit__(self, *exc) -> None:
        for thing in (self.client, self._cluster):
            if thing is not None:
                thing.close()
        self.client = self._cluster = None


def first_words(exc) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# --------------------------------------------------------------------------- checkpoints (continued)


def _identity_of(model, folder: str) -> dict:
    manifest = os.path.join(folder, "manifest.json")
    with open(manifest, "rb") as fh:
        import hashlib

        digest = hashlib.sha256(fh.read()).hexdigest()
    params = {k: v for k, v in model.get_params().items() if k != "epochs"}
    return {"model": model.kind, "params": json.loads(json.dumps(params, default=str)), "manifest_sha256": digest}


def _save_checkpoint(model, state, folder_out: str, data_folder: str, epoch: int) -> None:
    """The state's arrays and the history after ``epoch``, written to temporary names and renamed."""
    os.makedirs(folder_out, exist_ok=True)
    arrays: dict = {}
    structure = _flatten(state.snapshot(), arrays)
    tmp = os.path.join(folder_out, CHECKPOINT_FILE + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, os.path.join(folder_out, CHECKPOINT_FILE))
    meta = {**_identity_of(model, data_folder), "epoch": epoch, "history": model.history_, "structure": structure}
    tmp = os.path.join(folder_out, CHECKPOINT_META + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(meta, fh, default=float)
    os.replace(tmp, os.path.join(folder_out, CHECKPOINT_META))


def _flatten(value, arrays: dict):
    """A JSON description of ``value`` (nested tuples, lists and dicts of arrays and numbers), its arrays
    put into ``arrays`` under the names it gives."""
    if isinstance(value, np.ndarray):
        name = f"a{len(arrays)}"
        arrays[name] = value
        return {"array": name}
    if isinstance(value, dict):
        return {"dict": {str(k): _flatten(v, arrays) for k, v in value.items()}}
    if isinstance(value, (tuple, list)):
        return {"tuple": [_flatten(v, arrays) for v in value]}
    if isinstance(value, (np.integer, np.floating)):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float)):
        return {"value": value}
    raise FastMFError(f"internal error: cannot checkpoint a {type(value).__name__}")


def _unflatten(spec: dict, arrays: dict):
    if "array" in spec:
        return arrays[spec["array"]]
    if "dict" in spec:
        return {k: _unflatten(v, arrays) for k, v in spec["dict"].items()}
    if "tuple" in spec:
        return tuple(_unflatten(v, arrays) for v in spec["tuple"])
    return spec["value"]


def _resume(model, state, folder_out: str | None, data_folder: str) -> int:
    """Restore the state from ``folder_out``; returns the epoch it was written after."""
    if not folder_out:
        raise FastMFError("--resume needs --checkpoint DIR (the folder a previous run wrote its checkpoints to)")
    meta_path = os.path.join(folder_out, CHECKPOINT_META)
    try:
        with open(meta_path) as fh:
            meta = json.load(fh)
        with np.load(os.path.join(folder_out, CHECKPOINT_FILE), allow_pickle=False) as npz:
            snap = _unflatten(meta["structure"], {k: npz[k] for k in npz.files})
    except (OSError, ValueError, KeyError) as exc:
        raise FastMFError(f"{folder_out}: no readable checkpoint to resume from ({exc.__class__.__name__})") from None
    expected = _identity_of(model, data_folder)
    for key in ("model", "params", "manifest_sha256"):
        if meta.get(key) != expected[key]:
            what = {"model": "another model", "params": "other hyperparameters", "manifest_sha256": "another dataset"}[
                key
            ]
            raise FastMFError(
                f"{folder_out}: the checkpoint is of {what}; resume with the same model, "
                f"hyperparameters and data, or start without --resume"
            )
    current: dict = {}
    _flatten(state.snapshot(), current)
    saved: dict = {}
    _flatten(snap, saved)
    if saved.keys() != current.keys() or any(np.shape(saved[k]) != np.shape(current[k]) for k in saved):
        raise FastMFError(f"{folder_out}: the checkpoint's arrays do not match the model's shapes")
    state.restore(snap)
    model.history_ = list(meta.get("history", []))
    return int(meta["epoch"])


def _quiet_large_graphs():
    """Dask warns when a task carries a large array; here that is the design (factors, never ratings)."""
    warnings.filterwarnings("ignore", message=".*Sending large graph.*")
    warnings.filterwarnings("ignore", message=".*Large object of size.*")


_quiet_large_graphs()

__all__ = ["fit", "Cluster", "load_block", "Block", "ClusterSweeps", "Runner", "SUPPORTED"]
