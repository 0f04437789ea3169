"""A float32 matrix product against a weight packed once: the recurrent layers' per-step
``h @ W_hhᵀ`` (forward) and ``dpre @ W_hh`` (backward), ``dense.matmul``'s products with a
small weight (its rule says which), and the direct convolutions' backward products
(``conv_taps_packed``, whose B rows are windows read in place through ``gemm_at``'s offsets).

A recurrent step multiplies a few rows (the batch, or a core's share of it) by the same weight,
64 or more times a sequence. OpenBLAS packs the weight into its panel layout on every call: a
1 MB copy for an LSTM of h 256 beside a product of 8 M multiply-adds. At 32 rows it ran at
64 GFLOP/s, at 16 rows (a batch of 32 on two cores) at 42 (one core, b32 h256 s64; the large
products of the same step ran at 98). Here the weight is packed once per sequence, into panels
of 16 columns (``pack``: panel p holds columns 16p..16p+15, row after row), and each step runs
a tile kernel over it at 100-113 GFLOP/s whatever the rows: 32 × 256 → 1024 in 149 µs against
OpenBLAS's 264, 16 rows in 84 µs against 197.

The tile kernel is written in LLVM IR (a numba ``intrinsic``): a block of up to 6 rows × 16
columns kept in twelve 8-float vector registers across the whole inner dimension, each step one
broadcast per row and two fused multiply-adds. Loop code in numba does not get there: its
accumulators either stay in memory or end up as 96 scalars (≈ 2-9 GFLOP/s measured). Twelve
accumulators, two panel vectors and a broadcast fit the 16 vector registers of AVX2; where the
CPU has no FMA, LLVM computes the same fused operation in software (slow, the same results).

Where numba compiles for AVX-512 (``LANES``), a tile is up to 12 rows × two panels, one 16-float
register per row and panel: 24 accumulators of the 32 registers, twice the columns per
multiply-add. PyTorch's oneDNN runs AVX-512 there (a 3×3 stride-2 forward at 115-160 GFLOP/s on
one core of an Ice Lake Xeon, where this kernel's 6 × 16 AVX2 tile made 91-105). One core, old
→ new tile, GFLOP/s: 64 × 576 · 576 × 128 101 → 108, 1024 × 288 · 288 × 64 98 → 121, 256 × 1152
· 1152 × 256 99 → 118, 1020 × 128 · 128 × 128 101 → 131-144; six rows of two panels made 80-98
(B's two panels stream from L2 at twice AVX2's rate: twelve rows halve that per multiply-add).
The 3×3 stride-2 CNN's training step 0.99× → 1.09× PyTorch's, the VGG-style one 1.45× → 1.66×.
Panels whose rows start 64 bytes apart from a cache line (numba aligns arrays to 32) ran 130-145
against 107-115 unaligned in isolation, but through the layers aligned copies changed nothing
measurable.

Each output element is the sum over k in order, one rounding per step (a fused multiply-add),
whatever the number of rows in its tile: the results are the same for any split of the batch
over cores. They differ from OpenBLAS's in the last bits; float64 keeps the BLAS (the exact path
equal to PyTorch's). Self-contained on purpose: ``recurrent_loop``, ``conv_flat`` and
``conv_taps_packed`` compile these into their own kernels (an edit here recompiles them:
``kernels.cache_stamp``).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

PANEL = 16  # columns per panel: two vectors of 8 float32, or one of 16
ROW_BLOCK = 48  # rows of A taken through every panel before the next rows
_I64, _I32 = ir.IntType(64), ir.IntType(32)


def _avx512() -> bool:
    """Whether numba compiles for a CPU with AVX-512F (the features it targets, which
    NUMBA_CPU_NAME / NUMBA_CPU_FEATURES may narrow below the host's)."""
    try:
        from numba.core.registry import cpu_target
        features = cpu_target.target_context.codegen()._tm_features
    except Exception:  # noqa: BLE001 - a private attribute: without it, the AVX2 tile
        return False
    return "+avx512f" in str(features).split(",")


# AVX-512: a tile of ≤ 12 rows spans two panels, one 16-float register each per row (24
# accumulators + 2 panel vectors + 1 broadcast ≤ 32 registers); AVX2: ≤ 6 rows of one panel,
# two halves (12 accumulators + 2 + 1 ≤ 16 registers)
LANES, PAIR, TILE_ROWS = (16, 2, 12) if _avx512() else (8, 1, 6)


def _emit_tile(builder, rows: int, count: int, args) -> None:
    """C[:rows, :16·count] (+)= A[:rows, :K] · B in LLVM IR: A's rows ``lda`` floats apart,
    C's ``ldc``, B's row k the 16 floats at b + offs[k] (offs 0: a packed panel, row k at 16k)
    and, for ``count`` 2, the next panel's at b2 + offs[k]; ``accumulate`` 0 starts from zeros
    instead of C. Each row keeps 16·count / ``LANES`` accumulators across the whole k loop."""
    a_addr, lda, b_addr, b2_addr, c_addr, ldc, kdim, accumulate, offs_addr = args
    vt = ir.VectorType(ir.FloatType(), LANES)
    fp, vp = ir.FloatType().as_pointer(), vt.as_pointer()
    fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vt, [vt] * 3),
                                         f"llvm.fma.v{LANES}f32")
    a, b, b2, c = (builder.inttoptr(x, fp) for x in (a_addr, b_addr, b2_addr, c_addr))
    vecs = PANEL * count // LANES
    # vector q of a row of B: a half of the one panel (AVX2), or panel q (AVX-512)
    bases = [(b, q * LANES) for q in range(vecs)] if PAIR == 1 else [(b, 0), (b2, 0)][:vecs]
    offs = builder.inttoptr(offs_addr, _I64.as_pointer())
    undef, zero = ir.Constant(vt, ir.Undefined), ir.Constant(vt, [0.0] * LANES)
    splat_mask = ir.Constant(ir.VectorType(_I32, LANES), [0] * LANES)
    keep = builder.icmp_signed("!=", accumulate, ir.Constant(accumulate.type, 0))
    accs = []  # (register slot, C address) per row and vector; mem2reg makes them registers
    for r in range(rows):
        for q in range(vecs):
            at = builder.add(builder.mul(ir.Constant(_I64, r), ldc),
                             ir.Constant(_I64, LANES * q))
            ptr = builder.bitcast(builder.gep(c, [at]), vp)
            slot = cgutils.alloca_once(builder, vt)
            builder.store(builder.select(keep, builder.load(ptr, align=4), zero), slot)
            accs.append((slot, ptr))
    packed = builder.icmp_signed("==", offs_addr, ir.Constant(_I64, 0))
    with builder.if_else(packed) as (then, otherwise):  # a packed panel: no offsets to load
        for indexed in (then, otherwise):
            with indexed, cgutils.for_range(builder, kdim) as loop:
                k = loop.index
                row = (builder.mul(k, ir.Constant(_I64, PANEL)) if indexed is then
                       else builder.load(builder.gep(offs, [k])))
                parts = [builder.load(builder.bitcast(builder.gep(base, [builder.add(
                    row, ir.Constant(_I64, shift))]), vp), align=4) for base, shift in bases]
                for r in range(rows):
                    at = builder.add(builder.mul(ir.Constant(_I64, r), lda), k)
                    one = builder.insert_element(undef, builder.load(builder.gep(a, [at])),
                                                 ir.Constant(_I32, 0))
                    splat = builder.shuffle_vector(one, undef, splat_mask)
                    for q in range(vecs):
                        slot = accs[vecs * r + q][0]
                        builder.store(builder.call(fma, [splat, parts[q], builder.load(slot)]),
                                      slot)
    for slot, ptr in accs:
        builder.store(builder.load(slot), ptr, align=4)


@intrinsic
def _tile(typingctx, rows, count, a_addr, lda, b_addr, b2_addr, c_addr, ldc, kdim, accumulate,
          offs_addr):
    """``_emit_tile`` for 1-``TILE_ROWS`` rows and 1-``PAIR`` panels (both at run time: a switch
    over the tile bodies)."""
    def codegen(context, builder, signature, args):
        end = builder.append_basic_block("tile.end")
        which = builder.add(builder.mul(args[0], ir.Constant(args[0].type, 4)), args[1])
        switch = builder.switch(which, end)
        for r in range(1, TILE_ROWS + 1):
            for n in range(1, PAIR + 1):
                block = builder.append_basic_block(f"tile.{r}.{n}")
                switch.add_case(ir.Constant(args[0].type, 4 * r + n), block)
                builder.position_at_end(block)
                _emit_tile(builder, r, n, args[2:])
                builder.branch(end)
        builder.position_at_end(end)
        return context.get_dummy_value()
    return types.void(*[types.int64] * 11), codegen  # addresses as integers


@njit(inline="always")
def _rows(m, count, a_addr, lda, b_addr, b2_addr, c_addr, ldc, kdim, accumulate, offs_addr):
    """``count`` panels' product for all m rows, in tiles of ≤ ``TILE_ROWS`` rows as even as
    they come (32 rows as 6, 6, 5, 5, 5, 5 on AVX2: a last tile of 2 would run at half speed)."""
    tiles = -(-m // TILE_ROWS)
    i = 0
    for t in range(tiles):
        r = m // tiles + (1 if t < m % tiles else 0)
        _tile(r, count, a_addr + 4 * i * lda, lda, b_addr, b2_addr, c_addr + 4 * i * ldc, ldc,
              kdim, accumulate, offs_addr)
        i += r


PACKED_ROWS = np.empty(0, np.int64)  # gemm_at's offsets for packed panels


@intrinsic
def keep_alive(typingctx, arr):
    """A use of ``arr`` that numba keeps: its buffer is not freed before this point. numba frees
    a local array after its last use *it* sees, and ``arr.ctypes.data`` is such a use: a buffer
    read only through its address (``gemm_at``) was freed before the read (wrong gradients from
    reused memory, a segfault where the pages had gone). Call it after the last raw read."""
    def codegen(context, builder, signature, args):
        return context.get_dummy_value()
    return types.void(arr), codegen


@njit(cache=True)
def panels_shape(k: int, n: int) -> tuple:
    """The packed layout of a K × N weight: ⌈N/16⌉ panels of K rows × 16 columns."""
    return (-(-n // PANEL), k, PANEL)


@njit(cache=True, nogil=True)
def pack(b, out):
    """out (``panels_shape``) = b (K × N, any strides) in panels, the last one padded with 0."""
    k, n = b.shape
    for p in range(out.shape[0]):
        width = min(PANEL, n - p * PANEL)
        for kk in range(k):
            row = out[p, kk]
            for j in range(width):
                row[j] = b[kk, p * PANEL + j]
            for j in range(width, PANEL):
                row[j] = 0


@njit(inline="always")
def gemm_at(a_at, lda, m, kdim, b_at, panel_step, panels, offs, c_at, ldc, accumulate):
    """C (m × 16·panels) (+)= A (m × kdim) · B at raw addresses (int64). A's rows are ``lda``
    floats apart, each contiguous along k (rows may overlap: lda 1 reads one row's shifted
    copies). B's column panel p starts ``panel_step``·p floats after b_at, its row k ``offs[k]``
    floats further (an int64 array of window offsets; empty: a packed panel, 16k). C's
    rows are ``ldc`` apart and as wide as every panel (the caller pads C). The caller keeps the
    arrays behind the addresses alive past the call (``keep_alive``)."""
    acc = 1 if accumulate else 0
    o = np.int64(offs.ctypes.data) if len(offs) else np.int64(0)  # none: packed panels
    for i in range(0, m, ROW_BLOCK):  # a block of A's rows stays in cache across the panels
        rows = min(ROW_BLOCK, m - i)
        for p in range(0, panels, PAIR):
            b_p = b_at + 4 * panel_step * p
            _rows(rows, min(PAIR, panels - p), a_at + 4 * i * lda, lda, b_p,
                  b_p + 4 * panel_step, c_at + 4 * (i * ldc + PANEL * p), ldc, kdim, acc, o)
    keep_alive(offs)  # read through its address


@njit(cache=True, nogil=True)
def gemm_packed(a, panels, c, accumulate):
    """c (M × N) = a (M × K) · B, plus c's own values if ``accumulate``; B packed by ``pack``
    (C-contiguous). a and c are float32 with contiguous rows (any row stride). A last panel
    wider than c's columns goes through a scratch tile."""
    m, kdim = a.shape
    n = c.shape[1]
    lda, ldc, full, step = a.strides[0] // 4, c.strides[0] // 4, n // PANEL, kdim * PANEL
    offs, a_at, b_at = PACKED_ROWS, np.int64(a.ctypes.data), np.int64(panels.ctypes.data)
    gemm_at(a_at, lda, m, kdim, b_at, step, full, offs, np.int64(c.ctypes.data), ldc, accumulate)
    if full < panels.shape[0]:
        cols = n - full * PANEL
        scratch = np.zeros((m, PANEL), np.float32)
        if accumulate:
            scratch[:, :cols] = c[:, full * PANEL:]
        gemm_at(a_at, lda, m, kdim, b_at + 4 * step * full, step, 1, offs,
                np.int64(scratch.ctypes.data), PANEL, accumulate)
        c[:, full * PANEL:] = scratch[:, :cols]
        keep_alive(scratch)


def packed(b: np.ndarray) -> np.ndarray:
    """``b`` (K × N float32, any strides) packed for ``gemm_packed``."""
    out = np.empty(panels_shape(*b.shape), np.float32)
    pack(b, out)
    return out
