"""Register-tiled scoring ``s_qc += u_q . w_c`` of a few users against a few vectors of items.

The fused top-K kernel (:mod:`fastmf.kernels.topk`) forms ``users x items`` scores block by block.
Written as loops over factors that stream each score through memory, it runs at about 40% of the
machine's multiply-add rate (each score loaded and stored once per pass of eight factors, two users
per pass). Here a tile of ``R`` users by ``C`` vectors of eight items stays in ``R x C`` vector
registers for all ``D`` factors: per factor, ``C`` loads of the items' factor values, ``R``
broadcasts of the users', ``R x C`` fused multiply-adds, as a GEMM micro-kernel does; the tile
starts from the items' biases and ends by comparing its scores with each user's heap minimum, so
no other pass over the scores is needed unless one is above it. The items come *packed*
(:func:`pack_items`): tile ``t`` holds, factor by factor, the ``TILE`` items ``t TILE ..``
contiguously, then their biases, so a tile's ``(D + 1) x TILE`` values are read in order and stay
in L1 while the block's users sweep them.
"""

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from fastmf.kernels._simd import LANES, broadcast, const, fma, load_vector, store_vector, switch_on

#: item vectors per tile, and the users a tile scores at once (at most)
VECTORS, USERS = 3, 8
#: items per packed tile
TILE = VECTORS * LANES


def _emit_tile(context, builder, signature, args, n_users):
    """``buf[r0 + r, col + j] = b_j + users[q0 + r] . w_j`` for the items ``j < TILE`` of packed tile ``t``
    and ``r < n_users`` (static), and ``above[r0 + r] |= any score > floor[r0 + r]`` (``args``: ``packed,
    t, users, q0, buf, r0, col, floor, above``)."""
    packed, users, buf, floor, above = (
        context.make_array(signature.args[k])(context, builder, args[k]) for k in (0, 2, 4, 7, 8)
    )
    t, q0, r0, col = args[1], args[3], args[5], args[6]
    d = builder.sub(builder.extract_value(packed.shape, 1), const(1))  # the last row holds the biases
    u_ld = builder.extract_value(users.shape, 1)
    b_ld = builder.extract_value(buf.shape, 1)
    fmuladd = fma(builder)

    def row_vectors(base):
        return [load_vector(builder, base, const(LANES * c)) for c in range(VECTORS)]

    panel = builder.gep(packed.data, [builder.mul(t, builder.mul(builder.add(d, const(1)), const(TILE)))])
    rows = [builder.gep(users.data, [builder.mul(builder.add(q0, const(r)), u_ld)]) for r in range(n_users)]
    bias = row_vectors(builder.gep(panel, [builder.mul(d, const(TILE))]))
    acc = [[cgutils.alloca_once_value(builder, bias[c]) for c in range(VECTORS)] for r in range(n_users)]
    with cgutils.for_range(builder, d) as loop:
        w = row_vectors(builder.gep(panel, [builder.mul(loop.index, const(TILE))]))
        for r in range(n_users):
            b = broadcast(builder, builder.load(builder.gep(rows[r], [loop.index])))
            for c in range(VECTORS):
                builder.store(builder.call(fmuladd, [b, w[c], builder.load(acc[r][c])]), acc[r][c])
    mask_type = ir.IntType(LANES)
    for r in range(n_users):
        row = builder.add(r0, const(r))
        out = builder.gep(buf.data, [builder.add(builder.mul(row, b_ld), col)])
        low = broadcast(builder, builder.load(builder.gep(floor.data, [row])))
        hit = None
        for c in range(VECTORS):
            score = builder.load(acc[r][c])
            store_vector(builder, score, out, const(LANES * c))
            greater = builder.fcmp_ordered(">", score, low)
            hit = greater if hit is None else builder.or_(hit, greater)
        flag = builder.gep(above.data, [row])
        any_hit = builder.icmp_unsigned("!=", builder.bitcast(hit, mask_type), ir.Constant(mask_type, 0))
        builder.store(builder.or_(builder.load(flag), builder.zext(any_hit, ir.IntType(8))), flag)


@intrinsic
def score_tile(typingctx, packed, t, users, q0, buf, r0, col, floor, above, n_users):
    """``buf[r0 + r, col:col + TILE] = (item biases) + users[q0 + r] . (item factors)`` for the items of packed
    tile ``t`` and ``r < n_users`` (1 to ``USERS``, chosen at run time); float32, every score's multiply-adds
    in factor order from the item's bias. ``above[r0 + r]`` (uint8) is set when one of the tile's scores is
    above ``floor[r0 + r]`` (float32)."""
    sig = types.void(packed, types.int64, users, types.int64, buf, types.int64, types.int64, floor, above, types.int64)

    def codegen(context, builder, signature, args):
        def emit(k):
            _emit_tile(context, builder, signature, args, k)

        switch_on(builder, args[9], range(1, USERS + 1), emit, "tile")
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, parallel=True)
def _pack(item_vecs_t, item_bias, packed):
    d, n = item_vecs_t.shape
    for t in prange(packed.shape[0]):
        for f in range(d):
            for j in range(TILE):
                c = t * TILE + j
                packed[t, f, j] = item_vecs_t[f, c] if c < n else 0.0
        for j in range(TILE):
            c = t * TILE + j
            packed[t, d, j] = item_bias[c] if c < n else -np.inf


def pack_items(item_vecs_t: np.ndarray, item_bias: np.ndarray) -> np.ndarray:
    """The ``D x n_items`` item factors and the biases as tiles of ``TILE`` items, ``(n_tiles, D + 1, TILE)``:
    tile ``t`` holds ``item_vecs_t[f, t TILE + j]`` at ``[t, f, j]`` and the bias of item ``t TILE + j``
    at ``[t, D, j]``; past the last item, factors 0 and bias -inf (scores that never enter a heap)."""
    d, n = item_vecs_t.shape
    packed = np.empty(((n + TILE - 1) // TILE, d + 1, TILE), dtype=np.float32)
    _pack(item_vecs_t, item_bias, packed)
    return packed
