"""Products of a block of gathered rows with vectors, with explicit 256-bit vectors.

A conjugate-gradient step on an entity's system ``A = lam sum_j y_j y_j^T + tau I`` (ALS, WRMF)
needs ``A p = lam sum_j y_j (y_j . p) + tau p`` over its gathered rows ``y_j``: per row a dot
product and a scaled add. Written as scalar loops, LLVM vectorises each dot along the row and
ends it with a horizontal sum, and keeps the running sum of the scaled adds in memory (it cannot
prove the sum does not alias the rows): about 10 ns per row at ``D = 64``. Here the two halves
run over a block of rows held in L1, each in vector registers:

* :func:`row_dots`: ``out_j = y_j . p`` for eight rows at a time, eight accumulators of eight
  lanes, one load of ``p`` per eight rows, and one transposing reduction per eight rows (three
  rounds of pairwise adds) instead of one horizontal sum per row;
* :func:`add_weighted_rows`: ``acc += sum_j w_j y_j`` with up to eight column vectors of ``acc``
  in registers over the block: one broadcast of ``w_j``, one load and one fused multiply-add
  per (row, vector).

Rows are float32, C-contiguous, zero-padded to whole vectors (``LANES`` floats); ``p`` and
``acc`` likewise. LLVM does not produce this from scalar code, so both emit their loops' IR
directly, as :mod:`fastmf.kernels._gram` does.
"""

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from fastmf.kernels._simd import I32, LANES, const, fma, load_vector, shuffle, store_vector, switch_on, zeros
from fastmf.kernels._simd import broadcast as splat

#: column vectors of ``acc`` that :func:`add_weighted_rows` keeps in registers at once
CHUNK = 8


@njit(cache=True, inline="always")
def vector_width(d):
    """Columns of a gathered row block for ``D = d``: ``d`` rounded up to whole vectors."""
    return (d + LANES - 1) // LANES * LANES


def _pair_sums(builder, a, b):
    """Adjacent lanes summed, within each 128-bit half: ``[a0+a1, a2+a3, b0+b1, b2+b3, a4+a5, ...]``."""
    even = shuffle(builder, a, b, [0, 2, 8, 10, 4, 6, 12, 14])
    odd = shuffle(builder, a, b, [1, 3, 9, 11, 5, 7, 13, 15])
    return builder.fadd(even, odd)


def _transpose_sums(builder, acc):
    """The eight vectors ``acc`` reduced to one vector whose lane ``r`` is the sum of ``acc[r]``'s lanes."""
    h01 = _pair_sums(builder, acc[0], acc[1])
    h23 = _pair_sums(builder, acc[2], acc[3])
    h45 = _pair_sums(builder, acc[4], acc[5])
    h67 = _pair_sums(builder, acc[6], acc[7])
    q0 = _pair_sums(builder, h01, h23)  # [s0, s1, s2, s3 | the same rows' upper halves]
    q1 = _pair_sums(builder, h45, h67)
    low = shuffle(builder, q0, q1, [0, 1, 2, 3, 8, 9, 10, 11])
    high = shuffle(builder, q0, q1, [4, 5, 6, 7, 12, 13, 14, 15])
    return builder.fadd(low, high)


def _horizontal_sum(builder, v):
    """The sum of the eight lanes of ``v`` (a float)."""
    half = builder.fadd(shuffle(builder, v, v, [0, 1, 2, 3, 0, 1, 2, 3]), shuffle(builder, v, v, [4, 5, 6, 7] * 2))
    quarter = builder.fadd(half, shuffle(builder, half, half, [2, 3, 0, 1] * 2))
    last = builder.fadd(quarter, shuffle(builder, quarter, quarter, [1, 0, 3, 2] * 2))
    return builder.extract_element(last, ir.Constant(I32, 0))


def _emit_dots(builder, row_base, p_ptr, out_ptr, m, n_vectors):
    """``out[j] = row(j) . p`` for ``j < m`` over ``n_vectors`` vectors, ``row_base(j)`` the float pointer
    of row ``j``: eight rows at a time (eight accumulators, one transposing reduction), then one row
    at a time with a horizontal sum."""
    fmuladd = fma(builder)
    groups = builder.udiv(m, const(LANES))
    with cgutils.for_range(builder, groups) as group:
        first = builder.mul(group.index, const(LANES))
        bases = [row_base(builder.add(first, const(r))) for r in range(LANES)]
        acc = [cgutils.alloca_once_value(builder, zeros()) for _ in range(LANES)]
        with cgutils.for_range(builder, n_vectors) as vec:
            off = builder.mul(vec.index, const(LANES))
            pv = load_vector(builder, p_ptr, off)
            for r in range(LANES):
                x = load_vector(builder, bases[r], off)
                builder.store(builder.call(fmuladd, [x, pv, builder.load(acc[r])]), acc[r])
        store_vector(builder, _transpose_sums(builder, [builder.load(a) for a in acc]), out_ptr, first)
    rest = builder.mul(groups, const(LANES))
    with cgutils.for_range_slice(builder, rest, m, const(1), inc=True) as (j, _):
        base = row_base(j)
        acc = cgutils.alloca_once_value(builder, zeros())
        with cgutils.for_range(builder, n_vectors) as vec:
            off = builder.mul(vec.index, const(LANES))
            product = builder.call(
                fmuladd, [load_vector(builder, base, off), load_vector(builder, p_ptr, off), builder.load(acc)]
            )
            builder.store(product, acc)
        builder.store(_horizontal_sum(builder, builder.load(acc)), builder.gep(out_ptr, [j]))


def _rows_of(context, builder, signature, args):
    """The float data, row stride and ``(j0, m, n_vectors)`` of ``(rows, j0, m, n_vectors, ...)`` arguments."""
    y = context.make_array(signature.args[0])(context, builder, args[0])
    return y.data, builder.extract_value(y.shape, 1), args[1], args[2], args[3]


def _data(context, builder, signature, args, k):
    """The data pointer of array argument ``k``."""
    return context.make_array(signature.args[k])(context, builder, args[k]).data


@intrinsic
def row_dots(typingctx, rows, j0, m, n_vectors, p, out):
    """``out[j] = rows[j0 + j, :LANES n_vectors] . p[:LANES n_vectors]`` for ``j < m`` (float32)."""
    sig = types.void(rows, types.int64, types.int64, types.int64, p, out)

    def codegen(context, builder, signature, args):
        data, ld, j0, m, n_vectors = _rows_of(context, builder, signature, args)

        def row_base(j):
            return builder.gep(data, [builder.mul(builder.add(j0, j), ld)])

        p_ptr, out_ptr = (_data(context, builder, signature, args, k) for k in (4, 5))
        _emit_dots(builder, row_base, p_ptr, out_ptr, m, n_vectors)
        return context.get_dummy_value()

    return sig, codegen


def _emit_weighted(builder, data, ld, j0, m, w_ptr, acc_ptr, q0, n_vectors):
    """``acc[q0 + c] += sum_{j<m} w[j] rows[j0 + j, q0 + c]`` for ``c < LANES n_vectors`` (a static count)."""
    fmuladd = fma(builder)
    acc = [cgutils.alloca_once_value(builder, zeros()) for _ in range(n_vectors)]
    with cgutils.for_range(builder, m) as loop:
        row = builder.gep(data, [builder.add(builder.mul(builder.add(j0, loop.index), ld), q0)])
        wv = splat(builder, builder.load(builder.gep(w_ptr, [loop.index])))
        for c in range(n_vectors):
            x = load_vector(builder, row, const(LANES * c))
            builder.store(builder.call(fmuladd, [wv, x, builder.load(acc[c])]), acc[c])
    for c in range(n_vectors):
        offset = builder.add(q0, const(LANES * c))
        store_vector(
            builder, builder.fadd(load_vector(builder, acc_ptr, offset), builder.load(acc[c])), acc_ptr, offset
        )


@intrinsic
def add_weighted_rows(typingctx, rows, j0, m, n_vectors, w, acc):
    """``acc[q] += sum_{j<m} w[j] rows[j0 + j, q]`` for ``q < LANES n_vectors`` (float32); the columns in
    chunks of up to ``CHUNK`` vectors, each chunk's sums in registers over the rows."""
    sig = types.void(rows, types.int64, types.int64, types.int64, w, acc)

    def codegen(context, builder, signature, args):
        data, ld, j0, m, n_vectors = _rows_of(context, builder, signature, args)
        w_ptr, acc_ptr = (_data(context, builder, signature, args, k) for k in (4, 5))
        chunks = builder.udiv(builder.add(n_vectors, const(CHUNK - 1)), const(CHUNK))
        with cgutils.for_range(builder, chunks) as chunk:
            v0 = builder.mul(chunk.index, const(CHUNK))
            left = builder.sub(n_vectors, v0)
            count = builder.select(builder.icmp_unsigned(">", left, const(CHUNK)), const(CHUNK), left)
            q0 = builder.mul(v0, const(LANES))

            def emit(k):
                _emit_weighted(builder, data, ld, j0, m, w_ptr, acc_ptr, q0, k)

            switch_on(builder, count, range(1, CHUNK + 1), emit, "weighted")
        return context.get_dummy_value()

    return sig, codegen
