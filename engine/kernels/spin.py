"""Spin-waits and claims on shared int64 flags without the GIL, for ``engine.handoff``'s hand-over.

Waking a sleeping thread costs ~30-80 µs on these VMs (futex wake, then the GIL), as much as a
LeNet convolution's half at two cores. A thread that waits here instead notices the flag within
a few cache misses. The loads and the store are atomic (acquire / release) so that the compiler
keeps the load inside the loop and the work written before a flag is seen with it; a part is
claimed by compare-and-swap, so that it runs exactly once, on the worker or the caller. ``pause``
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


@intrinsic
def _compare_exchange(typingctx, arr, idx, expected, new):
    """arr[idx] = new if arr[idx] == expected, atomically; True when it was swapped."""
    def codegen(context, builder, sig, args):
        ptr = _item_pointer(context, builder, sig.args[0], args[0], args[1])
        res = builder.cmpxchg(ptr, args[2], args[3], "acq_rel", "acquire")
        return builder.extract_value(res, 1)
    return types.boolean(arr, idx, types.int64, types.int64), codegen


POSTED, DONE, CLAIMED = 0, 1, 2  # the slots of a worker's flags


@njit(cache=True, nogil=True)
def try_claim(flags, seq):
    """Take part ``seq`` (flags[CLAIMED] seq − 1 → seq): exactly one of the worker and the
    caller that posted it gets True, so a part the worker is too late for runs once, on the
    caller (a loaded machine: the worker had no core)."""
    return _compare_exchange(flags, CLAIMED, seq - 1, seq)


@njit(cache=True, nogil=True)
def worker_wait(flags, done, seen, spins, delay):
    """flags[DONE] = done (done ≥ 0: the part just finished), then wait up to ``spins`` pauses
    for a part newer than ``seen`` and try to claim it: (its seq, claimed), (seen, False) on
    time-out. A claimed part waits ``delay`` pauses more before the worker asks for the GIL,
    which the caller holds until it has entered its own part's kernel: whoever asks for the GIL
    while the other holds it sleeps on it (~25 µs here)."""
    if done >= 0:
        _store_release(flags, DONE, done)
    for _ in range(spins):
        v = _load_acquire(flags, POSTED)
        if v != seen:
            mine = try_claim(flags, v)
            if mine:
                for _ in range(delay):
                    _pause()
            return v, mine
        _pause()
    return seen, False


@njit(cache=True, nogil=True)
def wait_done(flags, seq, spins):
    """Wait up to ``spins`` pauses for flags[DONE] to reach ``seq``; True when it has."""
    for _ in range(spins):
        if _load_acquire(flags, DONE) == seq:
            return True
        _pause()
    return False
