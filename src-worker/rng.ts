// Seeded randomness for everything the loop must replay exactly on resume (splits, batch order).
// mulberry32: a 32-bit state PRNG (Tommy Ettinger), good enough for shuffling. Streams are derived
// from (seed, purpose, epoch) rather than carried along, so a checkpoint needs no generator state:
// the batcher's (epoch, position) pins down every batch to come.

/** A generator of floats in [0, 1). */
export function mulberry32(seed: number): { next(): number } {
  let a = seed >>> 0;
  return {
    next() {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    },
  };
}

/**
 * Mixes integers into one 32-bit seed, so each use (split, epoch e of the batcher, …) draws an
 * independent stream from the run's single seed instead of sharing one sequence.
 */
export function deriveSeed(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const part of parts) {
    // murmur3's fmix32 on each part, folded FNV-style.
    let k = part >>> 0;
    k = Math.imul(k ^ (k >>> 16), 0x85ebca6b);
    k = Math.imul(k ^ (k >>> 13), 0xc2b2ae35);
    k ^= k >>> 16;
    h = Math.imul(h ^ k, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** Fisher–Yates shuffle of a copy of `items`. */
export function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = items.slice();
  const rng = mulberry32(seed);
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
