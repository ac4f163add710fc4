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

#: float32 lanes of a 256-bit vector
LANES = 8
#: column vectors of ``acc`` that :func:`add_weighted_rows` keeps in registers at once
CHUNK = 8
_VEC = ir.VectorType(ir.FloatType(), LANES)
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)


@njit(cache=True, inline="always")
def vector_width(d):
    """Columns of a gathered row block for ``D = d``: ``d`` rounded up to whole vectors."""
    return (d + LANES - 1) // LANES * LANES


def _const(k):
    return ir.Constant(_I64, k)


def _fma(builder):
    return cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(_VEC, [_VEC, _VEC, _VEC]), "llvm.fmuladd.v8f32"
    )


def _vec_at(builder, base, offset):
    """A pointer to the vector at ``base[offset]`` (a float pointer, an i64 offset)."""
    return builder.bitcast(builder.gep(base, [offset]), _VEC.as_pointer())


def _shuffle(builder, a, b, mask):
    return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(_I32, len(mask)), mask))


def _pair_sums(builder, a, b):
    """Adjacent lanes summed, within each 128-bit half: ``[a0+a1, a2+a3, b0+b1, b2+b3, a4+a5, ...]``."""
    even = _shuffle(builder, a, b, [0, 2, 8, 10, 4, 6, 12, 14])
    odd = _shuffle(builder, a, b, [1, 3, 9, 11, 5, 7, 13, 15])
    return builder.fadd(even, odd)


def _transpose_sums(builder, acc):
    """The eight vectors ``acc`` reduced to one vector whose lane ``r`` is the sum of ``acc[r]``'s lanes."""
    h01 = _pair_sums(builder, acc[0], acc[1])
    h23 = _pair_sums(builder, acc[2], acc[3])
    h45 = _pair_sums(builder, acc[4], acc[5])
    h67 = _pair_sums(builder, acc[6], acc[7])
    q0 = _pair_sums(builder, h01, h23)  # [s0, s1, s2, s3 | the same rows' upper halves]
    q1 = _pair_sums(builder, h45, h67)
    low = _shuffle(builder, q0, q1, [0, 1, 2, 3, 8, 9, 10, 11])
    high = _shuffle(builder, q0, q1, [4, 5, 6, 7, 12, 13, 14, 15])
    return builder.fadd(low, high)


def _horizontal_sum(builder, v):
    """The sum of the eight lanes of ``v`` (a float)."""
    half = builder.fadd(_shuffle(builder, v, v, [0, 1, 2, 3, 0, 1, 2, 3]), _shuffle(builder, v, v, [4, 5, 6, 7] * 2))
    quarter = builder.fadd(half, _shuffle(builder, half, half, [2, 3, 0, 1] * 2))
    last = builder.fadd(quarter, _shuffle(builder, quarter, quarter, [1, 0, 3, 2] * 2))
    return builder.extract_element(last, ir.Constant(_I32, 0))


@intrinsic
def row_dots(typingctx, rows, j0, m, n_vectors, p, out):
    """``out[j] = rows[j0 + j, :LANES n_vectors] . p[:LANES n_vectors]`` for ``j < m`` (float32)."""
    sig = types.void(rows, types.int64, types.int64, types.int64, p, out)

    def codegen(context, builder, signature, args):
        y = context.make_array(signature.args[0])(context, builder, args[0])
        p_ptr = context.make_array(signature.args[4])(context, builder, args[4]).data
        out_ptr = context.make_array(signature.args[5])(context, builder, args[5]).data
        j0, m, n_vectors = args[1], args[2], args[3]
        ld = builder.extract_value(y.shape, 1)
        fma = _fma(builder)
        zero = ir.Constant(_VEC, [0.0] * LANES)

        def row_ptr(j):
            return builder.gep(y.data, [builder.mul(builder.add(j0, j), ld)])

        groups = builder.udiv(m, _const(LANES))
        with cgutils.for_range(builder, groups) as group:
            first = builder.mul(group.index, _const(LANES))
            bases = [row_ptr(builder.add(first, _const(r))) for r in range(LANES)]
            acc = [cgutils.alloca_once_value(builder, zero) for _ in range(LANES)]
            with cgutils.for_range(builder, n_vectors) as vec:
                off = builder.mul(vec.index, _const(LANES))
                pv = builder.load(_vec_at(builder, p_ptr, off), align=4)
                for r in range(LANES):
                    x = builder.load(_vec_at(builder, bases[r], off), align=4)
                    builder.store(builder.call(fma, [x, pv, builder.load(acc[r])]), acc[r])
            sums = _transpose_sums(builder, [builder.load(a) for a in acc])
            builder.store(sums, _vec_at(builder, out_ptr, first), align=4)
        rest = builder.mul(groups, _const(LANES))
        with cgutils.for_range_slice(builder, rest, m, _const(1), inc=True) as (j, _):
            base = row_ptr(j)
            acc = cgutils.alloca_once_value(builder, zero)
            with cgutils.for_range(builder, n_vectors) as vec:
                off = builder.mul(vec.index, _const(LANES))
                pv = builder.load(_vec_at(builder, p_ptr, off), align=4)
                x = builder.load(_vec_at(builder, base, off), align=4)
                builder.store(builder.call(fma, [x, pv, builder.load(acc)]), acc)
            builder.store(_horizontal_sum(builder, builder.load(acc)), builder.gep(out_ptr, [j]))
        return context.get_dummy_value()

    return sig, codegen


def _emit_weighted(builder, y_data, ld, j0, m, w_ptr, acc_ptr, q0, n_vectors):
    """``acc[q0 + c] += sum_{j<m} w[j] rows[j0 + j, q0 + c]`` for ``c < LANES n_vectors`` (a static count)."""
    fma = _fma(builder)
    zero = ir.Constant(_VEC, [0.0] * LANES)
    undef = ir.Constant(_VEC, ir.Undefined)
    acc = [cgutils.alloca_once_value(builder, zero) for _ in range(n_vectors)]
    with cgutils.for_range(builder, m) as loop:
        row = builder.gep(y_data, [builder.add(builder.mul(builder.add(j0, loop.index), ld), q0)])
        wv = builder.insert_element(undef, builder.load(builder.gep(w_ptr, [loop.index])), ir.Constant(_I32, 0))
        wv = _shuffle(builder, wv, undef, [0] * LANES)
        for c in range(n_vectors):
            x = builder.load(_vec_at(builder, row, _const(LANES * c)), align=4)
            builder.store(builder.call(fma, [wv, x, builder.load(acc[c])]), acc[c])
    for c in range(n_vectors):
        ptr = _vec_at(builder, acc_ptr, builder.add(q0, _const(LANES * c)))
        builder.store(builder.fadd(builder.load(ptr, align=4), builder.load(acc[c])), ptr, align=4)


@intrinsic
def add_weighted_rows(typingctx, rows, j0, m, n_vectors, w, acc):
    """``acc[q] += sum_{j<m} w[j] rows[j0 + j, q]`` for ``q < LANES n_vectors`` (float32); the columns in
    chunks of up to ``CHUNK`` vectors, each chunk's sums in registers over the rows."""
    sig = types.void(rows, types.int64, types.int64, types.int64, w, acc)

    def codegen(context, builder, signature, args):
        y = context.make_array(signature.args[0])(context, builder, args[0])
        w_ptr = context.make_array(signature.args[4])(context, builder, args[4]).data
        acc_ptr = context.make_array(signature.args[5])(context, builder, args[5]).data
        j0, m, n_vectors = args[1], args[2], args[3]
        ld = builder.extract_value(y.shape, 1)
        chunks = builder.udiv(builder.add(n_vectors, _const(CHUNK - 1)), _const(CHUNK))
        with cgutils.for_range(builder, chunks) as chunk:
            v0 = builder.mul(chunk.index, _const(CHUNK))
            q0 = builder.mul(v0, _const(LANES))
            left = builder.sub(n_vectors, v0)
            count = builder.select(builder.icmp_unsigned(">", left, _const(CHUNK)), _const(CHUNK), left)
            done = builder.append_basic_block("weighted.done")
            switch = builder.switch(count, done)
            for k in range(1, CHUNK + 1):
                case = builder.append_basic_block(f"weighted.{k}")
                switch.add_case(_const(k), case)
                builder.position_at_end(case)
                _emit_weighted(builder, y.data, ld, j0, m, w_ptr, acc_ptr, q0, k)
                builder.branch(done)
            builder.position_at_end(done)
        return context.get_dummy_value()

    return sig, codegen
