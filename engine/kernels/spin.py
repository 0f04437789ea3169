"""Spin-waits on a shared int64 flag without the GIL, for ``engine.handoff``'s hand-over.

Waking a sleeping thread costs ~30-80 µs on these VMs (futex wake, then the GIL), as much as a
LeNet convolution's half at two cores. A thread that waits here instead notices the flag within
a few cache misses. The loads and the store are atomic (acquire / release) so that the compiler
keeps the load inside the loop and the work written before a flag is seen with it. ``pause``
(x86) spends a waiting iteration without starving a sibling hyper-thread.
"""
from __future__ import annotations

import platform

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


def _item_pointer(context, builder, aty, arr, idx):
    ary = context.make_array(aty)(context, builder, arr)
    return cgutils.get_item_pointer(context, builder, aty, ary, [idx], wraparound=False)


@intrinsic
def _load_acquire(typingctx, arr, idx):
    def codegen(context, builder, sig, args):
        return builder.load_atomic(_item_pointer(context, builder, sig.args[0], *args),
                                   "acquire", 8)
    return types.int64(arr, idx), codegen


@intrinsic
def _store_release(typingctx, arr, idx, value):
    def codegen(context, builder, sig, args):
        ptr = _item_pointer(context, builder, sig.args[0], args[0], args[1])
        builder.store_atomic(args[2], ptr, "release", 8)
        return context.get_dummy_value()
    return types.void(arr, idx, value), codegen


@intrinsic
def _pause(typingctx):
    def codegen(context, builder, sig, args):
        if _X86:
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                "llvm.x86.sse2.pause")
            builder.call(fn, [])
        return context.get_dummy_value()
    return types.void(), codegen


@njit(cache=True, nogil=True)
def pause_loop(n):
    """``n`` pauses: a spin's unit, timed once to turn microseconds into iterations."""
    for _ in range(n):
        _pause()


@njit(cache=True, nogil=True)
def signal_then_wait(flags, put, value, watch, old, spins, delay):
    """flags[put] = value (put ≥ 0), then wait up to ``spins`` pauses for flags[watch] ≠ old;
    once it changes, ``delay`` pauses more before returning the new value (old on time-out).

    The delay lets the thread that changed the flag leave Python first: both then need the
    GIL, and whichever asks while the other holds it sleeps on it (~25 µs here)."""
    if put >= 0:
        _store_release(flags, put, value)
    for _ in range(spins):
        v = _load_acquire(flags, watch)
        if v != old:
            for _ in range(delay):
                _pause()
            return v
        _pause()
    return old
