// What every family's reader of a Hugging Face folder needs: config.json fields checked with the field
// named in the error, and telling a tied head (stored twice with equal values) from an untied one.
import { WorkbenchError } from '../../src-shared/errors.ts';

/** A reader of positive-integer fields of `json` (config.json) that names the field when it is missing or wrong. */
export function positiveIntField(json: Record<string, unknown>, source: string): (key: string, fallback?: number) => number {
  return (key, fallback) => {
    const value = json[key] ?? fallback;
    if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
      throw new WorkbenchError('model_invalid', `${source}: "${key}" is ${JSON.stringify(value)}, expected a positive integer`, { file: source, field: key });
    }
    return value;
  };
}

/** Equal element by element: a checkpoint that saved its tied head beside the embedding stores the same values twice. */
export function sameData(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
