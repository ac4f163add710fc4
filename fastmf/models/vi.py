"""Variational Bayes matrix factorisation (Lim & Teh 2007; Paquet & Koenigstein 2013).

Model: ``r_ui ~ N(mu + b_u + b_i + U_u . V_i, 1/lam)`` with priors
``U_u, V_i ~ N(0, diag(tau)^-1)``; ``mu`` is the training mean and the biases are
point estimates penalised by ``gamma/2 b^2`` (as in ALS). The posterior is
approximated by ``q(U_u) = N(m_u, S_u)`` and ``q(V_i) = N(m_i, S_i)`` (full ``D x D``
covariances, or diagonal ones with ``covariance="diagonal"``), fitted by coordinate
ascent on the evidence lower bound

    ELBO = N/2 log(lam / 2 pi) - lam/2 sum_(u,i) E_q[(r_ui - mu - b_u - b_i - U_u . V_i)^2]
           - sum_u KL(q(U_u) || p) - sum_i KL(q(V_i) || p) - gamma/2 (sum b_u^2 + sum b_i^2)

where ``E_q[(e - U.V)^2] = (e - m_u . m_i)^2 + m_u^T S_i m_u + m_i^T S_u m_i + tr(S_u S_i)``
and ``KL(N(m, S) || N(0, diag(tau)^-1)) = 1/2 [sum_d tau_d (S_dd + m_d^2) - D - sum_d log tau_d - log det S]``.
Each epoch updates every user (bias, then posterior) and then every item, each an
exact block maximiser (see :mod:`fastmf.kernels.vi`), so the ELBO never decreases.

With ``reg_scaling="count"`` (weighted-lambda, as in ALS-WR) entity ``e``'s prior precisions
are scaled by ``rho_e = max(n_e, 1)``, its number of training ratings (``rho_e = 1`` otherwise):
the factors' prior is ``N(0, (rho_e diag(tau))^-1)``, whose KL above reads
``1/2 [rho_e sum_d tau_d (S_dd + m_d^2) - D - sum_d log tau_d - D log rho_e - log det S]``,
and the bias penalty is ``gamma rho_e/2 b^2``.

``learn_hyper=True`` makes the bias penalty a prior, ``b_e ~ N(0, 1/(gamma rho_e))``, with Gaussian
posteriors ``q(b_e) = N(b_e, s_e)``: the sweeps' bias update is the mean, and the optimal
variance ``s_e = 1/(lam n_e + gamma rho_e)`` depends only on the precisions and the rating count
``n_e``. The ELBO's penalty becomes ``sum_e KL(q(b_e) || N(0, 1/(gamma rho_e)))`` and every rating's
expected squared error gains ``s_u + s_i``. Closed-form empirical-Bayes steps follow each
epoch, the exact maximisers of the ELBO in the precisions:

    lam = N / sum E_q[(r - mu - b_u - b_i - U.V)^2]
    gamma = (n_users + n_items) / sum_entities rho_e (b^2 + s)
    tau_d = sqrt(n_users n_items / (a_d b_d))     (automatic relevance determination)

with ``a_d``, ``b_d`` the sums of ``rho_e (m_d^2 + S_dd)`` over users and over items (the fixed
scales only weight the sums: in each precision ``x`` the ELBO is ``-x/2 sum_e rho_e q_e + n/2 log x``
plus terms free of ``x``); ``tau`` is maximised jointly with the free scale of each dimension
(``U_d -> c U_d``, ``V_d -> V_d / c`` leaves the likelihood unchanged), which is the optimum of
separate user and item precisions (see :meth:`VIState.update_tau`). Fixed precisions keep
point-estimate biases and the penalty ``gamma rho_e/2 b^2`` (the ML-32M report's setting;
``gamma`` may be 0 there).

Predictions carry a variance: ``var(r_ui) = s_u + s_i + m_u^T S_i m_u + m_i^T S_u m_i + tr(S_u S_i) + 1/lam``.
"""

from __future__ import annotations

import contextlib
import contextvars
from statistics import NormalDist

import numpy as np

from fastmf.common.errors import FastMFError
from fastmf.common.layout import (
    PACK_CHUNK,
    aligned_zeros,
    balanced_blocks,
    moments_width,
    pack_rows,
    row_width,
    scale_rows,
)
from fastmf.common.params import Param, declare
from fastmf.common.threads import n_threads
from fastmf.data_prep.dataset import Dataset
from fastmf.kernels import vi as kvi
from fastmf.metrics.rating import STRATA, rating_metrics, rmse
from fastmf.models import budget, checks, hyper
from fastmf.models.als import fold_in_scale, init_factors, ridge_scale, work_blocks
from fastmf.models.backend import backend_of
from fastmf.models.budget import Cost, Shape
from fastmf.models.factor import FactorModel, map_new_user

#: item ranges per thread in the scattered item sweep (dynamically scheduled)
SCATTER_PARTS_PER_THREAD = 4
#: ratings an item's float32 moments take before the scatter flushes them into float64 (the kernels' GRAM_BLOCK)
SCATTER_FLUSH = 128
#: bytes of the temporaries that pack the covariances into rows (:func:`fastmf.common.layout.pack_rows`)
PACK_TEMPORARIES = 6.0 * 8 * PACK_CHUNK
STRATEGIES = ("mean", "penalized", "ucb", "thompson")
#: half-widths, in predictive standard deviations, of the central 50% and 90% intervals
Z50 = NormalDist().inv_cdf(0.75)
Z90 = NormalDist().inv_cdf(0.95)
#: the ranking of the recommend/fold_in call running in this thread (or asyncio task): one model may
#: serve many threads at once (the web application), so the call's strategy is never an attribute
_RANKING: contextvars.ContextVar = contextvars.ContextVar("fastmf_vi_ranking", default=None)


class Posterior:
    """One side's ``q``: means ``(n, D)``, covariances ``(n, D, D)`` or variances ``(n, D)``,
    biases, ``log det S`` per entity, the rows read by the other side's full-covariance
    sweep (packed ``m m^T + S``, ``m``, bias; see :func:`fastmf.common.layout.pack_rows`),
    each entity's share of the expected squared error from its last update (``esse``) and the
    scales ``rho_e`` of its prior precisions (``prior_scale``, float64; empty: all 1, as the
    kernels take it)."""

    def __init__(self, mean, cov, bias, dtype, packed: bool, prior_scale: np.ndarray):
        self.prior_scale = prior_scale
        self.mean = np.ascontiguousarray(mean, dtype=dtype)
        self.cov = np.ascontiguousarray(cov, dtype=dtype)
        self.bias = np.ascontiguousarray(bias, dtype=dtype)
        diag = self.cov.diagonal(axis1=1, axis2=2) if self.cov.ndim == 3 else self.cov
        self.logdet = np.log(diag.astype(np.float64)).sum(axis=1)  # the initial covariances are diagonal
        self.rows = pack_rows(self.mean, self.cov, self.bias, dtype) if packed else None
        self.esse = np.zeros(self.mean.shape[0])

    @property
    def rho(self):
        """``rho_e`` per entity, or the scalar 1 when unscaled (for broadcasting)."""
        return self.prior_scale if self.prior_scale.size else 1.0

    def weighted_sum(self, values: np.ndarray) -> np.ndarray:
        """``sum_e rho_e values_e`` in float64, over the entities (the first axis of ``values``)."""
        if self.prior_scale.size:
            return self.prior_scale @ values
        return values.sum(axis=0, dtype=np.float64)

    @classmethod
    def of(cls, **arrays) -> Posterior:
        """A posterior holding the given arrays as they are (``mean``, ``cov``, ``bias``, ``logdet``, ``rows``,
        ``esse``, ``prior_scale``; the others None): one block's side on a cluster worker
        (:mod:`fastmf.distributed`)."""
        out = cls.__new__(cls)
        for name in ("mean", "cov", "bias", "logdet", "rows", "esse", "prior_scale"):
            setattr(out, name, arrays.get(name))
        return out

    def second_moments(self) -> np.ndarray:
        """``sum_e rho_e (m_ed^2 + S_e,dd)`` per dimension ``d``."""
        diag = self.cov.diagonal(axis1=1, axis2=2) if self.cov.ndim == 3 else self.cov
        return self.weighted_sum(np.square(self.mean, dtype=np.float64)) + self.weighted_sum(diag)

    def log_prior_scale(self) -> float:
        """``sum_e log rho_e``."""
        return float(np.sum(np.log(self.prior_scale)))


class MomentScatter:
    """Accumulators for the item half-sweep with full covariances: the moments of every item
    are summed by streaming the user rows once (:func:`fastmf.kernels.vi.scatter_sweep_full`)
    instead of gathering a user row per rating; the user table is too large for the cache, the
    item accumulators (popular items first) mostly are not. ``cuts`` locate in every user row
    the item ranges of about equal rating count, one task each."""

    def __init__(self, csr, csc_indptr: np.ndarray, factors: int, backend):
        width = moments_width(factors)
        n = csc_indptr.shape[0] - 1
        self.col_counts = np.diff(csc_indptr)
        parts = balanced_blocks(csc_indptr, factors, n_threads() * SCATTER_PARTS_PER_THREAD)
        self.cuts = backend.vi.row_cuts(csr[0], csr[1], parts)
        self.acc32 = aligned_zeros((n, width), np.float32)
        self.acc64 = aligned_zeros((n, width), np.float64)
        self.counts = np.zeros(n, dtype=np.int32)


def gather_sweep(backend, mat, mu, own: Posterior, other: Posterior, lam, gamma, tau, blocks, full: bool) -> None:
    """Update every row entity of the CSR matrix ``mat`` (``own``, in place) given the other side's
    posteriors, gathering per rating the other side's packed rows (full covariances) or means, variances
    and biases (diagonal): :func:`fastmf.kernels.vi.half_sweep_full` / ``half_sweep_diag``."""
    if full:
        backend.vi.half_sweep_full(
            *mat,
            mu,
            own.bias,
            own.mean,
            own.cov,
            own.rows,
            own.logdet,
            other.rows,
            lam,
            gamma,
            tau,
            blocks,
            own.esse,
            own.prior_scale,
        )
    else:
        backend.vi.half_sweep_diag(
            *mat,
            mu,
            own.bias,
            other.bias,
            own.mean,
            own.cov,
            own.logdet,
            other.mean,
            other.cov,
            lam,
            gamma,
            tau,
            blocks,
            own.esse,
            own.prior_scale,
        )


def scatter_sweep(
    backend, csr, scatter: MomentScatter, mu, own: Posterior, other: Posterior, lam, gamma, tau, blocks
) -> None:
    """Update every *column* entity of the CSR matrix ``csr`` (``own``, full covariances) by streaming the
    row entities' packed rows into ``scatter``'s accumulators (:func:`fastmf.kernels.vi.scatter_sweep_full`)."""
    backend.vi.scatter_sweep_full(
        csr[1],
        csr[2],
        mu,
        other.rows,
        scatter.cuts,
        scatter.acc32,
        scatter.acc64,
        scatter.counts,
        scatter.col_counts,
        own.bias,
        own.mean,
        own.cov,
        own.rows,
        own.logdet,
        lam,
        gamma,
        tau,
        blocks,
        own.esse,
        own.prior_scale,
    )


class VIState:
    """The variational parameters being fitted, in the backend's precision, plus the sweeps.

    ``csr``/``csc`` are ``(indptr, indices, data)`` by user and by item. Means start as
    in ALS (N(0, 1/D) draws, identical for both backends) and covariances at
    ``v I`` with ``v = 1/D`` (the spread of those draws); biases at zero. The expected
    squared error of that start is exact in closed form:
    ``sum (r - mu - m_u . m_i)^2 + v (sum_u n_u |m_u|^2 + sum_i n_i |m_i|^2) + N D v^2``.
    ``reg_scaling`` ``"count"`` scales each entity's prior precisions by its rating count
    (:func:`~fastmf.models.als.ridge_scale`).
    """

    divergence_hint = "try a larger --tau or --gamma, or a smaller --lam"
    #: ``(lo, hi)`` the predicted ratings of the reported RMSEs are clipped to (set by the model)
    bounds = (-np.inf, np.inf)

    def __init__(
        self,
        csr,
        csc,
        n_users,
        n_items,
        factors,
        mu,
        backend,
        seed=42,
        lam=0.1,
        gamma=2.5,
        tau=1.0,
        covariance="full",
        learn_hyper=False,
        reg_scaling="none",
    ):
        self.backend = backend
        self.learn_hyper = bool(learn_hyper)
        self.csr, self.csc = csr, csc
        self.n_ratings = int(csr[0][-1])
        self.mu = float(mu)
        self.lam, self.gamma = float(lam), float(gamma)
        self.tau = np.full(factors, float(tau))
        self.full = covariance == "full"
        rng = np.random.default_rng(seed)
        means = [init_factors(n, factors, rng).astype(np.float32) for n in (n_users, n_items)]
        var0 = 1.0 / factors
        sides = []
        for n, m, mat in zip((n_users, n_items), means, (csr, csc)):
            cov = (
                np.broadcast_to(var0 * np.eye(factors), (n, factors, factors))
                if self.full
                else np.full((n, factors), var0)
            )
            scale = ridge_scale(mat[0], reg_scaling)
            sides.append(
                Posterior(
                    m,
                    cov,
                    np.zeros(n),
                    backend.FLOAT,
                    packed=self.full,
                    prior_scale=np.zeros(0) if scale is None else scale,
                )
            )
        self.users, self.items = sides
        norms = [np.diff(mat[0]) @ np.square(m, dtype=np.float64).sum(axis=1) for mat, m in zip((csr, csc), means)]
        #: sum over the ratings of E_q[(r - mu - b_u - b_i - U_u . V_i)^2] for the current state
        self.esse = self.error_sums(csr)[0] + var0 * sum(norms) + self.n_ratings * factors * var0**2
        self.user_blocks = work_blocks(csr[0], factors)
        self.item_blocks = work_blocks(csc[0], factors)
        # the item sweep's accumulators (none for a state whose sweeps run elsewhere: csr without its indices)
        self.scatter = MomentScatter(csr, csc[0], factors, backend) if self.full and csr[1] is not None else None

    # ------------------------------------------------------------------ coordinate ascent
    def user_step(self) -> None:
        gather_sweep(
            self.backend,
            self.csr,
            self.mu,
            self.users,
            self.items,
            self.lam,
            self.gamma,
            self.tau,
            self.user_blocks,
            self.full,
        )
        # every rating belongs to exactly one swept entity: their shares are the whole sum
        self.esse = float(np.sum(self.users.esse))

    def item_step(self) -> None:
        if self.full:
            scatter_sweep(
                self.backend,
                self.csr,
                self.scatter,
                self.mu,
                self.items,
                self.users,
                self.lam,
                self.gamma,
                self.tau,
                self.item_blocks,
            )
        else:
            gather_sweep(
                self.backend,
                self.csc,
                self.mu,
                self.items,
                self.users,
                self.lam,
                self.gamma,
                self.tau,
                self.item_blocks,
                False,
            )
        self.esse = float(np.sum(self.items.esse))

    def bias_variances(self) -> tuple:
        """Variances of ``q(b_u)`` and ``q(b_i)``: with ``learn_hyper`` the biases have Gaussian
        posteriors whose optimal variance, ``1 / (lam n_e + gamma rho_e)``, depends only on the
        precisions and the entity's rating count ``n_e``; without it they are point estimates
        (zero variance). Being recomputed from the current precisions they are always at their
        optimum: a precision step maximises the ELBO with them held, and their move to the new
        optimum can only raise it further."""
        if not self.learn_hyper:
            return np.zeros(self.users.bias.shape[0]), np.zeros(self.items.bias.shape[0])
        return tuple(
            1.0 / (self.lam * np.diff(mat[0]) + self.gamma * side.rho)
            for mat, side in zip((self.csr, self.csc), (self.users, self.items))
        )

    def update_lam(self) -> None:
        """``lam = N / sum E_q[(r - mu - b_u - b_i - U.V)^2]``, the exact ELBO maximiser in ``lam``
        (the expectation includes the bias variances, ``sum_e n_e s_e``)."""
        if self.n_ratings:
            self.lam = self.n_ratings / self.expected_sse()

    def expected_sse(self) -> float:
        """``sum_(u,i) E_q[(r - mu - b_u - b_i - U.V)^2]``: the sweeps' ``esse`` plus ``sum_e n_e s_e``."""
        s_u, s_i = self.bias_variances()
        return float(self.esse + np.diff(self.csr[0]) @ s_u + np.diff(self.csc[0]) @ s_i)

    def update_gamma(self) -> None:
        """``gamma = (n_users + n_items) / sum_e rho_e (b_e^2 + s_e)``, the exact ELBO maximiser in the
        precision of the bias prior ``b_e ~ N(0, 1/(gamma rho_e))`` (``learn_hyper`` only: with point
        estimates the objective would be unbounded as ``b -> 0``, ``gamma -> inf``)."""
        n_entities = self.users.bias.shape[0] + self.items.bias.shape[0]
        self.gamma = n_entities / sum(
            side.weighted_sum(np.square(side.bias, dtype=np.float64) + s)
            for side, s in zip((self.users, self.items), self.bias_variances())
        )

    def update_tau(self) -> None:
        """The exact joint ELBO maximiser in ``tau`` and the scale of each dimension.

        Rescaling dimension ``d`` (``U_d -> c_d U_d``, ``V_d -> V_d / c_d``, covariances and
        ``log det`` alike) leaves every prediction and the expected squared error unchanged,
        and it is the direction the entity-by-entity sweeps move along most slowly. With
        ``a_d = sum_u rho_u (m_ud^2 + S_u,dd)`` (:meth:`Posterior.second_moments`), ``b_d`` the same
        over items and ``n_U``, ``n_V`` their counts, the ELBO's ``- tau_d/2 (c_d^2 a_d + b_d / c_d^2)
        + (n_U + n_V)/2 log tau_d + (n_U - n_V) log c_d`` is maximised by ``c_d^2 = sqrt(n_U b_d / (n_V a_d))``
        and ``tau_d = sqrt(n_U n_V / (a_d b_d))`` = ``(n_U + n_V) / sum_e rho_e (m_ed^2 + S_e,dd)`` after the
        rescaling. This is the same optimum as separate user and item prior precisions
        (``n_U / a_d`` and ``n_V / b_d``) written with one shared ``tau``.
        """
        a, b = self.users.second_moments(), self.items.second_moments()
        n_u, n_i = self.users.mean.shape[0], self.items.mean.shape[0]
        scale = np.sqrt(np.sqrt(n_u * b / (n_i * a)))
        self._rescale(self.users, scale)
        self._rescale(self.items, 1.0 / scale)
        self.tau = np.sqrt(n_u * n_i / (a * b))

    @staticmethod
    def _rescale(side: Posterior, scale: np.ndarray) -> None:
        """``m -> C m``, ``S -> C S C``, ``log det S += 2 sum log c`` with ``C = diag(scale)``."""
        f = scale.astype(side.mean.dtype)
        side.mean *= f
        side.cov *= np.outer(f, f) if side.cov.ndim == 3 else f * f
        side.logdet += 2.0 * float(np.sum(np.log(scale)))
        if side.rows is not None:
            scale_rows(side.rows, scale)

    def epoch(self) -> dict:
        """Users, then items, then (with ``learn_hyper``) ``lam``, ``gamma`` and ``tau``."""
        self.user_step()
        self.item_step()
        if self.learn_hyper:
            self.update_lam()
            self.update_gamma()
            self.update_tau()
        return {}

    def rmse(self, data: Dataset) -> float:
        """RMSE of the predicted ratings (the predictive means clipped to ``bounds``) on ``data``."""
        return rmse(self.error_sums(data.csr)[1], data.n_ratings)

    def metrics(self, train: Dataset, eval_set: Dataset | None) -> dict:
        """``train_rmse``, ``test_rmse`` (with ``eval_set``), ``elbo`` and ``lam`` of one history record."""
        out = {"train_rmse": self.rmse(train)}
        if eval_set is not None:
            out["test_rmse"] = self.rmse(eval_set)
        out["elbo"] = self.elbo()
        out["lam"] = self.lam
        return out

    def finite(self, record: dict) -> bool:
        """The ELBO sums every mean's and variance's contribution: finite iff they all are."""
        return bool(np.isfinite(record["elbo"]))

    def snapshot(self):
        sides = tuple(
            {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vars(p).items()}
            for p in (self.users, self.items)
        )
        return sides, self.lam, self.gamma, self.tau.copy(), self.esse

    def restore(self, snap) -> None:
        sides, self.lam, self.gamma, self.tau, self.esse = snap
        for posterior, saved in zip((self.users, self.items), sides):
            vars(posterior).update(saved)

    # ------------------------------------------------------------------ objective
    def kl(self) -> float:
        """``sum_e KL(q_e || N(0, (rho_e diag(tau))^-1))`` over the ``E`` users and items, i.e.
        ``1/2 [tau . sum_e rho_e (m_e^2 + diag S_e) - E (D + sum_d log tau_d) - D sum_e log rho_e
        - sum_e log det S_e]``."""
        sides = (self.users, self.items)
        n_entities = sum(side.mean.shape[0] for side in sides)
        second = sum(side.second_moments() for side in sides)
        logdets = sum(float(np.sum(side.logdet)) for side in sides)
        log_scales = sum(side.log_prior_scale() for side in sides)
        d = self.tau.shape[0]
        return 0.5 * (
            float(self.tau @ second) - n_entities * (d + float(np.sum(np.log(self.tau)))) - d * log_scales - logdets
        )

    def bias_term(self) -> float:
        """The biases' share of ``-ELBO``: the penalty ``gamma/2 sum_e rho_e b_e^2`` of point estimates or,
        with ``learn_hyper``, ``sum_e KL(N(b_e, s_e) || N(0, 1/(gamma rho_e)))``
        ``= 1/2 sum_e [gamma rho_e (b_e^2 + s_e) - 1 - log(gamma rho_e s_e)]``."""
        total = 0.0
        for side, s in zip((self.users, self.items), self.bias_variances()):
            total += 0.5 * self.gamma * side.weighted_sum(np.square(side.bias, dtype=np.float64) + s)
            if self.learn_hyper:
                total -= 0.5 * float(np.sum(1.0 + np.log(self.gamma * side.rho * s)))
        return float(total)

    def elbo(self) -> float:
        """The ELBO of the module docstring (bias term included)."""
        lik = 0.5 * self.n_ratings * np.log(self.lam / (2.0 * np.pi)) - 0.5 * self.lam * self.expected_sse()
        return float(lik - self.kl() - self.bias_term())

    def arrays(self):
        return self.mu, self.users.bias, self.items.bias, self.users.mean, self.items.mean

    def error_sums(self, mat) -> tuple:
        """``(SSE of the predictive means, SSE of the predicted ratings)`` on a CSR matrix (the means
        clipped to ``bounds``)."""
        return self.backend.metrics.error_sums(*mat, *self.arrays(), *self.bounds)


class VI(FactorModel):
    """Variational Bayes matrix factorisation with Gaussian posteriors.

    Defaults are the ML-32M report's fixed setting: ``factors`` D = 20, ``lam`` = 0.1
    (noise precision), ``tau`` = 1.0 (prior precision), ``gamma`` = 2.5 (bias penalty),
    20 ``epochs``. ``covariance`` is ``"full"`` (``D x D`` per entity) or
    ``"diagonal"``; ``learn_hyper`` learns ``lam``, a per-dimension ``tau`` (jointly with
    the scale of each dimension: the optimum of separate user and item precisions) and
    the bias prior precision ``gamma`` by empirical Bayes, with Gaussian bias posteriors;
    ``lam`` is first set to its maximiser for the initial posteriors (the fixed 0.1
    would be a poor start), ``tau`` and ``gamma`` start from the given values.
    ``reg_scaling="count"`` scales each user's and item's prior precisions ``tau`` and
    ``gamma`` by its number of ratings (weighted-lambda, as ALS-WR; learned precisions are
    then the common factor of those scaled priors).

    Learned: the posterior means ``user_factors_``/``item_factors_``, covariances
    ``user_cov_``/``item_cov_`` (float32, ``(n, D, D)`` or ``(n, D)``), biases and their
    posterior variances ``user_bias_var_``/``item_bias_var_`` (zero for point estimates),
    the final ``lam_``, ``gamma_`` and ``tau_`` (per dimension). Every history record
    holds ``elbo`` and ``lam``.
    """

    kind = "vi"
    strategies = STRATEGIES
    _saved_arrays = FactorModel._saved_arrays + ("user_cov_", "item_cov_", "tau_", "user_bias_var_", "item_bias_var_")
    _saved_scalars = FactorModel._saved_scalars + ("lam_", "gamma_", "best_epoch_")

    params = declare(
        factors=hyper.FACTORS.but(low=1),
        lam=hyper.LAM,
        gamma=hyper.GAMMA,
        tau=hyper.TAU,
        epochs=hyper.EPOCHS,
        covariance=Param(
            "full", "Posterior covariance per user/item: full (D x D) or diagonal.", choices=("full", "diagonal")
        ),
        learn_hyper=Param(False, "Learn lam, gamma and a per-dimension tau by empirical Bayes."),
        random_state=hyper.RANDOM_STATE,
        backend=hyper.BACKEND,
        patience=hyper.PATIENCE,
        validation_frac=hyper.VALIDATION_FRAC,
        reg_scaling=hyper.REG_SCALING,
    )
    #: the fixed-hyperparameter mode's ranges (with learn_hyper the precisions are learned, not searched)
    search_space = {
        "factors": hyper.SEARCH_FACTORS,
        "tau": hyper.SEARCH_TAU,
        "gamma": hyper.SEARCH_GAMMA,
        "reg_scaling": hyper.SEARCH_REG_SCALING,
    }

    def _check_combination(self) -> None:
        if self.learn_hyper and self.gamma < hyper.PRECISION_MIN:
            raise FastMFError(
                f"learn_hyper needs a starting gamma of at least {hyper.PRECISION_MIN:g} (the "
                f"precision of the bias prior), got {self.gamma!r}"
            )

    # ------------------------------------------------------------------ memory and time budget
    def training_cost(self, shape: Shape, factors: int | None = None, covariance: str | None = None) -> Cost:
        """VI's estimate (see :mod:`fastmf.models.budget`), with ``s`` bytes per float of the backend
        (4 numba, 8 numpy), ``E`` users + items, ``I`` items, ``R`` ratings, ``T`` threads:

        * full covariance, memory: per entity the ``D x D`` covariance, its packed row of
          ``m m^T + S`` (``D(D+1)/2 + D + 1`` floats, cache-line padded) and the mean, ``E (D^2 + D^2/2 + 2D) s``
          (twice with ``patience``); the items' moment accumulators of ``W`` floats (the padded width of a
          packed row plus ``D``), float32 for every item and float64 for at most ``R / 128`` of them (only
          items with 128 ratings or more flush into them); per thread three ``D x D`` float64 matrices;
          the float64 draws the means start from; with numpy, instead of the accumulators, the largest
          entity's gathered rows and the float32 copies of the covariances kept by the model. Arithmetic per epoch:
          ``2 R (D^2 + 3D)`` for the moments of both half-sweeps and ``E (4/3 D^3 + 4 D^2)`` for the
          Cholesky factor, the inverse and the mean;
        * diagonal, memory: means and variances ``2 E D s`` and per thread a ``D x D`` Gram matrix;
          arithmetic ``2 R (D^2 + 4D) + 2 E D^2`` (the Gram matrix and one coordinate pass);
        * traffic per epoch (:func:`fastmf.models.budget.sweep_traffic`): per rating the other side's packed
          row (float32, full) or its means, variances and bias (diagonal); per entity what it writes.
        """
        d = int(self.factors) if factors is None else int(factors)
        full = (covariance or self.covariance) == "full"
        s = np.dtype(backend_of(self.backend).FLOAT).itemsize
        snapshots = 2 if self.patience is not None else 1
        threads = n_threads()
        start = 12.0 * d * max(shape.users, shape.items)
        per_rating = budget.PER_RATING_BYTES * shape.ratings
        if full:
            rows = row_width(d)
            state = shape.entities * (d * d + rows + d + 4) * s
            if self.backend == "numpy":  # gathers per entity; keeps float32 copies of the covariances
                extra = (8.0 + s) * rows * shape.largest + 4.0 * d * d * shape.entities + 16.0 * shape.ratings
            else:  # the scatter's accumulators: float32 for every item, float64 for those with >= 128 ratings
                width = moments_width(d)
                extra = (4.0 * shape.items + 8.0 * min(shape.items, shape.ratings / SCATTER_FLUSH)) * width
                extra += threads * (24.0 * d * d + 12.0 * width + 8.0 * SCATTER_PARTS_PER_THREAD * shape.users)
            memory = snapshots * state + extra + start + per_rating + PACK_TEMPORARIES
            flops = 2.0 * shape.ratings * (d * d + 3 * d) + shape.entities * (4.0 / 3.0 * d**3 + 4.0 * d * d)
            traffic = budget.sweep_traffic(shape, 4.0 * rows, s * (d * d + d) + 4.0 * rows)
        else:
            state = shape.entities * (2 * d + 4) * s
            scratch = threads * (12.0 * (d + 3) ** 2 + 4.0 * 128 * (d + 3))
            gather = 8.0 * shape.largest * d if self.backend == "numpy" else 0.0
            memory = snapshots * state + scratch + start + gather + per_rating
            flops = 2.0 * shape.ratings * (d * d + 4 * d) + 2.0 * shape.entities * d * d
            traffic = budget.sweep_traffic(shape, s * (2 * d + 1), s * (2 * d + 1))
        return Cost(bytes=memory, flops=flops, traffic=traffic)

    def _budget_label(self, factors: int | None) -> str:
        return f"VI with D={factors} {self.covariance} covariance"

    def _budget_alternatives(self, shape: Shape) -> tuple:
        if self.covariance != "full":
            return ()
        return (("--covariance diagonal", self.training_cost(shape, covariance="diagonal")),)

    def _new_state(self, train: Dataset, state_class: type = VIState) -> VIState:
        """The training state (``state_class``: :class:`VIState` or a subclass, as for ALS); with
        ``learn_hyper`` it starts from the noise level of the initial q, not the fixed ``lam``."""
        state = state_class(
            train.csr,
            train.csc,
            train.n_users,
            train.n_items,
            int(self.factors),
            self.global_mean_,
            backend_of(self.backend),
            self.random_state,
            self.lam,
            self.gamma,
            self.tau,
            self.covariance,
            self.learn_hyper,
            self.reg_scaling,
        )
        if self.learn_hyper:
            state.update_lam()
        return state

    def _keep(self, state: VIState) -> None:
        self.user_factors_, self.item_factors_ = state.users.mean, state.items.mean
        self.user_bias_, self.item_bias_ = state.users.bias, state.items.bias
        self.user_cov_ = state.users.cov.astype(np.float32, copy=False)
        self.item_cov_ = state.items.cov.astype(np.float32, copy=False)
        self.user_bias_var_, self.item_bias_var_ = (s.astype(np.float32) for s in state.bias_variances())
        self.lam_, self.gamma_, self.tau_ = float(state.lam), float(state.gamma), state.tau

    # ------------------------------------------------------------------ persistence
    def _check_loaded(self, path: str) -> None:
        super()._check_loaded(path)
        d = self.user_factors_.shape[1]
        tail = (d, d) if self.covariance == "full" else (d,)
        checks.check_shape(self.user_cov_, (self.n_users, *tail), "user_cov", path)
        checks.check_shape(self.item_cov_, (self.n_items, *tail), "item_cov", path)
        checks.check_shape(self.tau_, (d,), "tau", path)
        checks.check_shape(self.user_bias_var_, (self.n_users,), "user_bias_var", path)
        checks.check_shape(self.item_bias_var_, (self.n_items,), "item_bias_var", path)
        variances = [c.diagonal(axis1=1, axis2=2) if c.ndim == 3 else c for c in (self.user_cov_, self.item_cov_)]
        checks.check_positive(
            path, user_variances=variances[0], item_variances=variances[1], tau=self.tau_, lam=np.asarray(self.lam_)
        )
        checks.require(np.isfinite(self.gamma_) and self.gamma_ >= 0, path, "gamma must be finite and non-negative")
        checks.check_finite(path, user_cov=self.user_cov_, item_cov=self.item_cov_)
        checks.require(
            bool((self.user_bias_var_ >= 0).all() and (self.item_bias_var_ >= 0).all()),
            path,
            "bias variances must be non-negative",
        )

    # ------------------------------------------------------------------ predictive distribution
    def _pair_moments(self, users: np.ndarray, items: np.ndarray):
        """Predictive mean and variance of ``mu + b_u + b_i + U_u . V_i`` (no noise) per index pair;
        a cold id's bias has the prior variance ``1/gamma`` (``learn_hyper``; else it is a point at 0)."""
        f32 = np.float32
        d = self.user_factors_.shape[1]
        prior_cov = (np.diag(1.0 / self.tau_) if self.user_cov_.ndim == 3 else 1.0 / self.tau_).astype(f32)
        mean = np.empty(users.shape[0])
        var = np.empty(users.shape[0])
        kvi.pair_moments(
            np.asarray(users, dtype=np.int64),
            np.asarray(items, dtype=np.int64),
            float(self.global_mean_),
            self.user_bias_.astype(f32, copy=False),
            self.item_bias_.astype(f32, copy=False),
            self.user_factors_.astype(f32, copy=False),
            self.user_cov_,
            self.item_factors_.astype(f32, copy=False),
            self.item_cov_,
            np.zeros(d, dtype=f32),
            prior_cov,
            mean,
            var,
        )
        cold = 1.0 / self.gamma_ if self.learn_hyper else 0.0
        for idx, bias_var in ((users, self.user_bias_var_), (items, self.item_bias_var_)):
            known = (idx >= 0) & (idx < bias_var.shape[0])
            var += np.where(known, bias_var[np.where(known, idx, 0)], cold)
        return mean, var

    def predict(self, users, items, return_std: bool = False):
        """Predicted ratings (the predictive means clipped to the training scale); with ``return_std``
        the Gaussian predictive's mean (not clipped) and standard deviation
        ``sqrt(m_u^T S_i m_u + m_i^T S_u m_i + tr(S_u S_i) + 1/lam)``. Unknown ids get the prior."""
        if not return_std:
            return super().predict(users, items)
        self._check_fitted()
        u = self.user_map_.index_of(np.asarray(users))
        i = self.item_map_.index_of(np.asarray(items))
        if u.shape != i.shape:
            raise FastMFError("users and items must have the same length")
        mean, var = self._pair_moments(u, i)
        return mean, np.sqrt(var + 1.0 / self.lam_)

    def fold_in_predict(self, ratings: dict, items, return_std: bool = False):
        """Predicted ratings of ``items`` for a new user ``{item_id: rating}`` folded in as in :meth:`fold_in`;
        with ``return_std`` the Gaussian predictive's mean (not clipped) and standard deviation
        ``sqrt(s + s_i + m^T S_i m + m_i^T S m + tr(S S_i) + 1/lam)`` of the new user's posterior
        ``N(m, S)`` (``s``, its bias variance, is ``1/(lam n + gamma)`` with ``learn_hyper`` and 0 for
        point-estimate biases)."""
        if not return_std:
            return super().fold_in_predict(ratings, items)
        self._check_fitted()
        if not isinstance(ratings, dict):
            raise FastMFError("fold_in_predict takes one new user as {item_id: rating}")
        given, values = self._fold_in_input(ratings)
        b, m, s = self._fold_in_state(given, values)
        idx = self.item_indices(np.atleast_1d(items))
        mean = self._new_user_means((b, m), idx)
        var = self.score_variance(m[None, :], np.asarray(s[None], dtype=np.float32))[0][idx]
        bias_var = 1.0 / (self.lam_ * len(given) + self.gamma_) if self.learn_hyper else 0.0
        return mean, np.sqrt(var.astype(np.float64) + bias_var + 1.0 / self.lam_)

    def calibration(self, test: Dataset) -> dict:
        """Shares of ``test`` ratings (aligned to the training maps) inside the central 50% and
        90% predictive intervals ``mean +- z sd`` (``coverage_50``, ``coverage_90``) and the mean
        predictive standard deviation (``mean_sd``)."""
        mean, var = self._pair_moments(test.user_of_entry, test.indices)
        sd = np.sqrt(var + 1.0 / self.lam_)
        z = np.abs(test.data - mean) / sd
        if not test.n_ratings:  # not available (null in JSON), not 0% coverage
            return {"coverage_50": float("nan"), "coverage_90": float("nan"), "mean_sd": float("nan")}
        n = test.n_ratings
        return {
            "coverage_50": float(np.count_nonzero(z <= Z50) / n),
            "coverage_90": float(np.count_nonzero(z <= Z90) / n),
            "mean_sd": float(sd.mean()),
        }

    def _evaluate(self, test) -> dict:
        return {**rating_metrics(self, test), **self.calibration(test)}

    # ------------------------------------------------------------------ uncertainty report
    def item_variances(self) -> np.ndarray:
        """Mean posterior variance per dimension of every item, ``tr(S_i) / D``."""
        cov = self.item_cov_
        diag = cov.diagonal(axis1=1, axis2=2) if cov.ndim == 3 else cov
        return diag.mean(axis=1, dtype=np.float64)

    def uncertainty_table(self, k: int = 5) -> dict:
        """The ``k`` rated items with the smallest and the largest posterior variance (with their
        training counts) and the mean variance per stratum of training counts."""
        var, counts = self.item_variances(), self.item_counts_
        rated = np.flatnonzero(counts > 0)
        order = rated[np.lexsort((-counts[rated], var[rated]))]

        def rows(idx):
            return [
                {
                    "item_id": self.item_map_.ids[i].item(),
                    "title": self.title(i),
                    "variance": float(var[i]),
                    "ratings": int(counts[i]),
                }
                for i in idx
            ]

        strata = {}
        for label, lo, hi in STRATA:
            mask = (counts >= lo) & (counts <= hi)
            strata[label] = {
                "mean_variance": float(var[mask].mean()) if mask.any() else float("nan"),
                "items": int(mask.sum()),
            }
        return {"most_certain": rows(order[:k]), "least_certain": rows(order[::-1][:k]), "by_count": strata}

    def fit_summary(self) -> dict:
        """Learned precisions and the item uncertainty table, for ``fastmf train`` reports."""
        return {
            "lam": self.lam_,
            "gamma": self.gamma_,
            "tau": self.tau_.tolist(),
            "uncertainty": self.uncertainty_table(),
        }

    # ------------------------------------------------------------------ ranking with uncertainty
    def recommend(
        self, users, k: int = 10, *, strategy: str = "mean", beta: float = 1.0, seed: int | None = None, **options
    ):
        """:meth:`~fastmf.models.base.Recommender.recommend`, ranked by ``strategy``:

        ``mean`` (predicted rating), ``penalized`` (``mean / (1 + var)``, the ML-32M
        report's), ``ucb`` (``mean + beta * sd``) or ``thompson`` (the rating under one
        draw of every user and item factor from q; ``seed`` makes the draw repeatable).
        ``var``/``sd`` are those of ``b_i + U_u . V_i`` under q (the noise ``1/lam`` and the
        user's bias variance are the same for every item and are left out).
        """
        with self._ranking(strategy, beta, seed):
            return super().recommend(users, k, **options)

    def recommend_all(
        self, k: int = 10, users=None, *, strategy: str = "mean", beta: float = 1.0, seed: int | None = None, **options
    ):
        """As the base class, ranked by ``strategy`` (see :meth:`recommend`; one draw per call)."""
        with self._ranking(strategy, beta, seed):
            return super().recommend_all(k, users, **options)

    def fold_in(
        self, ratings, k: int = 10, *, strategy: str = "mean", beta: float = 1.0, seed: int | None = None, **options
    ):
        """As the base class, ranked by ``strategy`` (see :meth:`recommend`)."""
        with self._ranking(strategy, beta, seed):
            return super().fold_in(ratings, k, **options)

    @contextlib.contextmanager
    def _ranking(self, strategy: str, beta: float, seed: int | None):
        if strategy not in STRATEGIES:
            raise FastMFError(f"unknown strategy '{strategy}' (choose from {', '.join(STRATEGIES)})")
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
        token = _RANKING.set(
            {"model": self, "strategy": strategy, "beta": float(beta), "seed": int(seed), "items": None}
        )
        try:
            yield
        finally:
            _RANKING.reset(token)

    def _current_ranking(self) -> dict | None:
        """The ranking of this model's recommend/fold_in call running in this thread (None: the mean)."""
        rank = _RANKING.get()
        return None if rank is None or rank["model"] is not self or rank["strategy"] == "mean" else rank

    def _linear_scores(self) -> bool:
        return self._current_ranking() is None

    def _score_batch(self, users: np.ndarray) -> np.ndarray:
        scores = super()._score_batch(users)
        return self._rank_scores(
            scores, self.user_factors_[users], self.user_cov_[users], self.user_bias_[users], self.n_items + users
        )

    def _fold_in_state(self, item_idx: np.ndarray, values: np.ndarray | None):
        """The new user's bias and ``q(U) = N(m, S)`` against the fixed items: the MAP of
        :func:`~fastmf.models.factor.map_new_user` with the prior precision ``rho diag(tau)``, the bias
        penalty ``gamma rho`` (``rho = max(n, 1)`` for its ``n`` ratings with ``reg_scaling="count"``,
        else 1) and the items' summed covariances ``E`` (the expected squared error's extra term), and
        ``S = A^-1`` (its diagonal ``1/A_dd`` for diagonal posteriors) with ``A = rho diag(tau) + lam (V^T V + E)``:
        the fixed point of repeated user steps."""
        v, res = self._fold_in_residuals(item_idx, values)
        full = self.item_cov_.ndim == 3
        cov = self.item_cov_[item_idx].astype(np.float64).sum(axis=0)
        rho = fold_in_scale(len(item_idx), self.reg_scaling)
        b, m, a = map_new_user(v, res, self.lam_, rho * self.gamma_, rho * self.tau_, cov if full else np.diag(cov))
        return b, m, (np.linalg.inv(a) if full else 1.0 / np.diag(a))

    def _score_vector(self, state) -> np.ndarray:
        b, m, s = state
        scores = super()._score_vector((b, m))[None, :]
        streams = np.array([self.n_items + self.n_users])  # a stream no known user or item draws from
        return self._rank_scores(scores, m[None, :], s[None], np.array([b]), streams)[0]

    def _rank_scores(self, scores, mean_u, cov_u, bias_u, streams):
        """Apply the current call's ranking strategy to mean scores ``(B, n_items)`` of users with
        posteriors ``N(mean_u[b], cov_u[b])`` and biases ``bias_u``; Thompson draws user ``b`` from
        random stream ``streams[b]`` (item ``i`` draws from stream ``i``)."""
        rank = self._current_ranking()
        if rank is None:
            return scores
        if rank["strategy"] == "thompson":
            if rank["items"] is None:
                rank["items"] = self._draw(self.item_factors_, self.item_cov_, np.arange(self.n_items), rank["seed"])
            u = self._draw(mean_u, cov_u, streams, rank["seed"])
            return (
                u @ rank["items"].T
                + self.item_bias_[None, :]
                + (self.global_mean_ + bias_u.astype(np.float64))[:, None]
            )
        var = self.score_variance(mean_u, cov_u.astype(np.float32, copy=False))
        if rank["strategy"] == "penalized":
            return scores / (1.0 + var)
        return scores + rank["beta"] * np.sqrt(var)

    @staticmethod
    def _draw(mean, cov, streams, seed) -> np.ndarray:
        out = np.empty(mean.shape, dtype=np.float64)
        kvi.draw(
            np.ascontiguousarray(mean, dtype=np.float32),
            np.ascontiguousarray(cov, dtype=np.float32),
            np.asarray(streams, dtype=np.int64),
            seed,
            out,
        )
        return out

    def score_variance(self, mean_u: np.ndarray, cov_u: np.ndarray) -> np.ndarray:
        """Variance of ``b_i + U . V_i`` for every item, ``(B, n_items)``, for user posteriors
        ``N(mean_u[b], cov_u[b])``: ``s_i + m_u^T S_i m_u + tr(S_u S_i) + m_i^T S_u m_i``."""
        m_i, s_i = self.item_factors_.astype(np.float32, copy=False), self.item_cov_
        mean_u = mean_u.astype(np.float32, copy=False)
        if s_i.ndim == 3:
            d = m_i.shape[1]
            outer = (mean_u[:, :, None] * mean_u[:, None, :] + cov_u).reshape(len(mean_u), d * d)
            var = outer @ s_i.reshape(len(s_i), d * d).T
            for b in range(len(mean_u)):
                var[b] += np.einsum("id,id->i", m_i @ cov_u[b], m_i)
        else:
            var = (mean_u**2 + cov_u) @ s_i.T + cov_u @ (m_i**2).T
        return np.maximum(var, 0.0) + self.item_bias_var_[None, :]
