"""The tfjs engine's seeded generators (src-worker/rng.ts), bit for bit, so both engines draw the same
initial adapter tensors from a run's seed.

mulberry32's state advances by a constant, so draw i is a pure function of seed + (i + 1) * 0x6d2b79f5:
numpy computes a whole tensor's draws at once in uint32 arithmetic (which wraps as Math.imul does)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_MASK = 0xFFFFFFFF


def derive_seed(*parts: int) -> int:
    """deriveSeed: murmur3's fmix32 of each part, folded FNV-style."""
    h = 0x811C9DC5
    for part in parts:
        k = part & _MASK
        k = ((k ^ (k >> 16)) * 0x85EBCA6B) & _MASK
        k = ((k ^ (k >> 13)) * 0xC2B2AE35) & _MASK
        k ^= k >> 16
        h = ((h ^ k) * 0x01000193) & _MASK
    return h


def mulberry32(seed: int, count: int) -> npt.NDArray[np.float64]:
    """The first `count` floats in [0, 1) of mulberry32(seed)."""
    steps = np.arange(1, count + 1, dtype=np.uint64)
    a = ((np.uint64(seed & _MASK) + steps * np.uint64(0x6D2B79F5)) & np.uint64(_MASK)).astype(np.uint32)
    t = a
    t = (t ^ (t >> np.uint32(15))) * (t | np.uint32(1))
    t = t ^ (t + (t ^ (t >> np.uint32(7))) * (t | np.uint32(61)))
    out: npt.NDArray[np.float64] = (t ^ (t >> np.uint32(14))).astype(np.float64) / 4294967296.0
    return out


def shuffled(items: list[int], seed: int) -> list[int]:
    """Fisher-Yates as rng.ts shuffles (used by tests that check the plan against Python's reading of it)."""
    out = list(items)
    draws = mulberry32(seed, max(0, len(out) - 1))
    for n, i in enumerate(range(len(out) - 1, 0, -1)):
        j = int(np.floor(draws[n] * (i + 1)))
        out[i], out[j] = out[j], out[i]
    return out
