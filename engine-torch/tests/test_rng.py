"""The vectorised generators against a plain transcription of rng.ts's loop (one draw at a time, with
JavaScript's 32-bit integer semantics spelled out), and the shuffle's properties."""

from __future__ import annotations

from workbench_torch.rng import derive_seed, mulberry32, shuffled


def _imul(a: int, b: int) -> int:
    return (a * b) & 0xFFFFFFFF


def _mulberry32_loop(seed: int, count: int) -> list[float]:
    a = seed & 0xFFFFFFFF
    out = []
    for _ in range(count):
        a = (a + 0x6D2B79F5) & 0xFFFFFFFF
        t = a
        t = _imul(t ^ (t >> 15), t | 1)
        t ^= (t + _imul(t ^ (t >> 7), t | 61)) & 0xFFFFFFFF
        out.append(((t ^ (t >> 14)) & 0xFFFFFFFF) / 4294967296)
    return out


def test_vectorised_draws_equal_the_sequential_generator() -> None:
    for seed in (0, 1, 42, 0xFFFFFFFF, derive_seed(7, 3)):
        assert mulberry32(seed, 257).tolist() == _mulberry32_loop(seed, 257)


def test_derive_seed_separates_streams_and_is_32_bit() -> None:
    seeds = {derive_seed(42, i) for i in range(1000)}
    assert len(seeds) == 1000 and all(0 <= s < 2**32 for s in seeds)
    assert derive_seed(42, 1) != derive_seed(1, 42)


def test_shuffle_is_a_seeded_permutation() -> None:
    items = list(range(50))
    a = shuffled(items, 9)
    assert sorted(a) == items and a != items and a == shuffled(items, 9) and a != shuffled(items, 10)
