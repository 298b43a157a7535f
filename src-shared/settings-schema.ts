// How a settings section is written: a zod object that refuses unknown keys, naming each and the known
// key it most likely means (a typo must not silently fall back to a default). A leaf, so that the
// method descriptors (methods.ts) and the run configuration (config.ts) both build on it.
import { z } from 'zod';

/** The known key nearest to `key` by edit distance, when it is near enough to be a typo of it. */
export function closestKey(key: string, known: readonly string[]): string | null {
  const distance = (a: string, b: string) => {
    let row = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
      const next = [i];
      for (let j = 1; j <= b.length; j++)
        next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
      row = next;
    }
    return row[b.length]!;
  };
  let best: { key: string; d: number } | null = null;
  for (const candidate of known) {
    const d = distance(key, candidate);
    if (!best || d < best.d) best = { key: candidate, d };
  }
  return best && best.d <= Math.max(2, Math.floor(best.key.length / 3)) ? best.key : null;
}

/** The message for settings a schema does not know: each key named, with the known key it most likely means. */
export function unknownKeysMessage(keys: readonly string[], known: readonly string[], elsewhere: (key: string) => string | null = () => null): string {
  return keys
    .map((key) => {
      const hint = elsewhere(key) ?? (closestKey(key, known) ? `did you mean "${closestKey(key, known)}"?` : `known settings here: ${known.join(', ')}`);
      return `Unknown setting "${key}": ${hint}`;
    })
    .join('; ');
}

/** A z.object that refuses unknown keys, naming each and suggesting the closest known one. */
export function strictObject<Shape extends z.ZodRawShape>(shape: Shape, elsewhere?: (key: string) => string | null) {
  const known = Object.keys(shape);
  return z.strictObject(shape, { error: (issue) => (issue.code === 'unrecognized_keys' ? unknownKeysMessage(issue.keys, known, elsewhere) : undefined) });
}
