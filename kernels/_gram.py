"""Register-blocked Gram accumulation ``G += Y^T Y`` with explicit 256-bit vectors.

A block of ``m`` rows ``y_j`` (row-major, float32, zero-padded to :func:`gram_width` columns) is
added into the Gram matrix ``G[p, q] += sum_j y_jp y_jq`` one *panel* at a time: a few rows ``p``
of ``G`` and a few vectors of eight consecutive columns ``q`` held in registers while the loop
runs over the block, so that every rating costs one broadcast of ``y_jp`` per row, one load per
column vector and one fused multiply-add per (row, vector) pair, and a panel ends with a vector
add into ``G``: no horizontal sums. LLVM's loop vectoriser cannot be asked for this (given scalar
code it vectorises along ``j`` and ends every tile with one horizontal reduction per entry, about
290 ns per call at ``D = 20``), so :func:`_panel` emits the loop's IR directly.

The panels cover the lower triangle, each with the column vectors that reach its last row: eight
rows while one or two vectors do, six while three do (``D = 20`` with its two moment rows takes
three passes over the block: 8 x 1, 8 x 2, 6 x 3 vectors), then four rows (two for a remainder of
at most two) and at most four vectors at a time; at most 18 accumulators of the 32 vector
registers AVX-512 gives (on a 16-register machine some spill, still correct).
Entries right of the diagonal inside a panel are summed too and are not meant to be read.
"""

from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from fastmf.kernels._simd import LANES, broadcast, const, fma, load_vector, store_vector, switch_on, zeros


@njit(cache=True, inline="always")
def gram_width(rows):
    """Columns of a row block (and of ``G``) for ``rows`` rows of ``G``: every panel's vectors fit."""
    return ((rows + 3) // 4 * 4 + LANES - 1) // LANES * LANES


def _emit_panel(context, builder, signature, args, n_rows, n_vectors):
    """The IR of one panel: ``gram[p0 + r, q0 + c] += sum_{j<m} y[j, p0 + r] y[j, q0 + c]`` for
    ``r < n_rows`` and ``c < LANES n_vectors``, with ``n_rows x n_vectors`` vector accumulators
    (``args``: ``y, m, p0, q0, gram``)."""
    y_arr = context.make_array(signature.args[0])(context, builder, args[0])
    g_arr = context.make_array(signature.args[4])(context, builder, args[4])
    m, p0, q0 = args[1], args[2], args[3]
    y_ld = builder.extract_value(y_arr.shape, 1)
    g_ld = builder.extract_value(g_arr.shape, 1)
    fmuladd = fma(builder)

    def at(offset, k):
        return builder.add(offset, const(k))

    acc = [[cgutils.alloca_once_value(builder, zeros()) for _ in range(n_vectors)] for _ in range(n_rows)]
    with cgutils.for_range(builder, m) as loop:
        row = builder.gep(y_arr.data, [builder.mul(loop.index, y_ld)])
        cols = [load_vector(builder, row, at(q0, LANES * k)) for k in range(n_vectors)]
        for r in range(n_rows):
            b = broadcast(builder, builder.load(builder.gep(row, [at(p0, r)])))
            for k in range(n_vectors):
                builder.store(builder.call(fmuladd, [b, cols[k], builder.load(acc[r][k])]), acc[r][k])
    for r in range(n_rows):
        g_row = builder.gep(g_arr.data, [builder.mul(at(p0, r), g_ld)])
        for k in range(n_vectors):
            total = builder.fadd(load_vector(builder, g_row, at(q0, LANES * k)), builder.load(acc[r][k]))
            store_vector(builder, total, g_row, at(q0, LANES * k))


def _panel(n_rows, n_vectors):
    """An intrinsic ``panel(y, m, p0, q0, gram)``: one panel of ``n_rows`` rows and ``n_vectors`` vectors."""

    @intrinsic
    def panel(typingctx, y, m, p0, q0, gram):
        def codegen(context, builder, signature, args):
            _emit_panel(context, builder, signature, args, n_rows, n_vectors)
            return context.get_dummy_value()

        return types.void(y, types.int64, types.int64, types.int64, gram), codegen

    return panel


def _panels(n_rows):
    """An intrinsic ``panels(y, m, p0, q0, gram, n_vectors)``: the panel of ``n_rows`` rows and
    ``n_vectors`` (1 to 4, chosen at run time) vectors."""

    @intrinsic
    def panels(typingctx, y, m, p0, q0, gram, n_vectors):
        def codegen(context, builder, signature, args):
            def emit(k):
                _emit_panel(context, builder, signature, args, n_rows, k)

            switch_on(builder, args[5], range(1, 5), emit, "panels")
            return context.get_dummy_value()

        return types.void(y, types.int64, types.int64, types.int64, gram, types.int64), codegen

    return panels


@njit(cache=True, inline="always")
def flush_lower(acc, out, d):
    """``out[p, q] += acc[p, q]`` for ``q <= p < d`` (``out`` float64), then ``acc = 0``: a float32 run of
    :func:`gram_update` sums added to its float64 total (also clearing what the panels summed right of
    the diagonal, which is never read)."""
    for p in range(d):
        for q in range(p + 1):
            out[p, q] += acc[p, q]
    acc[:, :] = 0.0


_panel_8x1, _panel_8x2, _panel_6x3 = _panel(8, 1), _panel(8, 2), _panel(6, 3)
_panels_4, _panels_2 = _panels(4), _panels(2)


@njit(cache=True, inline="always")
def gram_update(y, m, rows, gram):
    """``gram[p, q] += sum_{j<m} y[j, p] y[j, q]`` for ``q <= p < rows`` (float32; ``y`` and ``gram``
    C-contiguous, at least :func:`gram_width` ``(rows)`` columns, ``y``'s zero beyond its data)."""
    p0 = 0
    width = gram.shape[0]
    while p0 < rows:
        left = rows - p0
        if left > 4 and width - p0 >= 8 and min(p0 + 8, rows) <= 2 * LANES:
            if p0 + 8 <= LANES:
                _panel_8x1(y, m, p0, 0, gram)
            else:
                _panel_8x2(y, m, p0, 0, gram)
            p0 += 8
            continue
        if left > 4 and width - p0 >= 6 and 2 * LANES < min(p0 + 6, rows) <= 3 * LANES:
            _panel_6x3(y, m, p0, 0, gram)
            p0 += 6
            continue
        n_vectors = (min(p0 + 4, rows) + LANES - 1) // LANES
        q0 = 0
        while q0 < n_vectors * LANES:
            k = min(4, n_vectors - q0 // LANES)
            if left <= 2:
                _panels_2(y, m, p0, q0, gram, k)
            else:
                _panels_4(y, m, p0, q0, gram, k)
            q0 += k * LANES
        p0 += 4
