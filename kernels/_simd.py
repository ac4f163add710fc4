"""LLVM IR building blocks of the explicit-vector kernels (:mod:`fastmf.kernels._gram`,
:mod:`fastmf.kernels._rowblock`, :mod:`fastmf.kernels._scoretile`): 256-bit vectors of eight float32
lanes, their fused multiply-add, loads, broadcasts and shuffles, and a switch that selects, at run
time, one of several variants emitted for a static count (accumulators must be named registers, so
a kernel emits one variant per count it handles)."""

from llvmlite import ir
from numba.core import cgutils

#: float32 lanes of a 256-bit vector
LANES = 8
VEC = ir.VectorType(ir.FloatType(), LANES)
I32 = ir.IntType(32)
I64 = ir.IntType(64)


def const(k: int) -> ir.Constant:
    """An i64 constant."""
    return ir.Constant(I64, k)


def fma(builder) -> ir.Function:
    """``llvm.fmuladd.v8f32``: ``a * b + c``, fused where the target has FMA."""
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(VEC, [VEC, VEC, VEC]), "llvm.fmuladd.v8f32")


def vector_at(builder, base, offset):
    """A pointer to the vector at ``base[offset]`` (``base`` a float pointer, ``offset`` an i64 value)."""
    return builder.bitcast(builder.gep(base, [offset]), VEC.as_pointer())


def load_vector(builder, base, offset):
    """The vector at ``base[offset]`` (no alignment assumed beyond the float's)."""
    return builder.load(vector_at(builder, base, offset), align=4)


def store_vector(builder, value, base, offset) -> None:
    builder.store(value, vector_at(builder, base, offset), align=4)


def shuffle(builder, a, b, mask):
    """``shufflevector a, b, mask`` (lanes ``0 .. 7`` of ``a``, ``8 .. 15`` of ``b``)."""
    return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(I32, len(mask)), mask))


def broadcast(builder, value):
    """A vector holding the float ``value`` in every lane."""
    undef = ir.Constant(VEC, ir.Undefined)
    return shuffle(builder, builder.insert_element(undef, value, ir.Constant(I32, 0)), undef, [0] * LANES)


def zeros():
    return ir.Constant(VEC, [0.0] * LANES)


def switch_on(builder, count, variants, emit, label: str) -> None:
    """``emit(k)`` for the one ``k`` of ``variants`` equal to the i64 value ``count`` (nothing for another)."""
    done = builder.append_basic_block(f"{label}.done")
    switch = builder.switch(count, done)
    for k in variants:
        case = builder.append_basic_block(f"{label}.{k}")
        switch.add_case(const(k), case)
        builder.position_at_end(case)
        emit(k)
        builder.branch(done)
    builder.position_at_end(done)
