// The probe: a few fixed inputs and an adapted model's logits on them. Training saves the trained
// model's logits; an export reloads the written files into a fresh adapter and must reproduce them.
import fs from 'node:fs';
import path from 'node:path';
import type * as tfc from '@tensorflow/tfjs-core';
import { WorkbenchError } from '../../src-shared/errors.ts';
import type { AdapterModel } from '../methods/types.ts';
import type { AdapterHooks, CausalLM } from '../models/types.ts';
import { parseSafetensors, serializeSafetensors, writeFileAtomic } from '../formats/safetensors.ts';
import { tf } from '../tf.ts';

/** Probe inputs and the trained model's logits on them: the reference an export is verified against. */
export const PROBE_FILE = 'probe.safetensors';

/** At most this many probe sequences… */
export const PROBE_COUNT = 4;
/** …of at most this many tokens (the end of each prompt, next to where the answer starts)… */
export const PROBE_MAX_TOKENS = 16;
/**
 * …and logits kept for the last few positions only: the adapter acts at every position, and the full
 * [P, T, vocab] table would be megabytes for a 50k vocabulary.
 */
export const PROBE_POSITIONS = 4;

export interface Probe {
  /** [P][T] token ids, right-padded to one length. */
  inputIds: number[][];
}

/** Builds probe inputs from token sequences (prompts), cutting each to its last PROBE_MAX_TOKENS tokens. */
export function makeProbe(sequences: number[][], padTokenId: number): Probe {
  const cut = sequences
    .filter((s) => s.length > 0)
    .slice(0, PROBE_COUNT)
    .map((s) => s.slice(Math.max(0, s.length - PROBE_MAX_TOKENS)));
  if (cut.length === 0) throw new Error('makeProbe needs at least one non-empty sequence');
  const length = Math.max(...cut.map((s) => s.length));
  return { inputIds: cut.map((s) => [...s, ...Array<number>(length - s.length).fill(padTokenId)]) };
}

/** Logits at the last PROBE_POSITIONS positions, [P, K, vocab], without dropout. */
export async function probeLogits(
  model: CausalLM,
  adapters: (AdapterHooks & Partial<Pick<AdapterModel, 'prepare'>>) | null,
  probe: Probe,
): Promise<{ shape: number[]; data: Float32Array }> {
  const P = probe.inputIds.length;
  const T = probe.inputIds[0]!.length;
  const K = Math.min(PROBE_POSITIONS, T);
  // Methods conditioned on the input (SeLoRA) take each probe row, as given, as its prompt.
  adapters?.prepare?.(model, probe.inputIds);
  const logits = tf.tidy(() => {
    const ids = tf.tensor2d(probe.inputIds.flat(), [P, T], 'int32');
    const all = model.forward(ids, { adapters, training: false });
    return tf.slice(all, [0, T - K, 0], [P, K, all.shape[2]]) as tfc.Tensor3D;
  });
  try {
    return { shape: [...logits.shape], data: Float32Array.from((await logits.data()) as Float32Array) };
  } finally {
    logits.dispose();
  }
}

/** The probe of an adapter made without training data to draw one from (a PEFT import, an SG-LoRA generation): 16 tokens spread over the vocabulary. */
export const syntheticProbe = (vocabSize: number): Probe => ({ inputIds: [Array.from({ length: 16 }, (_, i) => (i * 7919 + 13) % vocabSize)] });

/** The largest elementwise difference; Infinity for arrays of different lengths or a NaN difference. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (Number.isNaN(d)) return Infinity; // a NaN logit is as different as it gets
    if (d > max) max = d;
  }
  return max;
}

export async function writeProbe(dir: string, probe: Probe, logits: { shape: number[]; data: Float32Array }, backend: string): Promise<number> {
  const P = probe.inputIds.length;
  const T = probe.inputIds[0]!.length;
  const bytes = serializeSafetensors(
    {
      // safetensors holds one dtype per call here; token ids < 2^24 are exact in float32.
      input_ids: { shape: [P, T], data: Float32Array.from(probe.inputIds.flat()) },
      logits,
    },
    { format: 'pt', backend, positions: `last ${logits.shape[1]}` },
  );
  await writeFileAtomic(path.join(dir, PROBE_FILE), bytes);
  return bytes.byteLength;
}

/** The probe of an adapter folder, or null when the folder has none (checkpoints). */
export async function readProbe(dir: string): Promise<{ probe: Probe; logits: { shape: number[]; data: Float32Array }; backend: string } | null> {
  const file = path.join(dir, PROBE_FILE);
  let bytes: Uint8Array;
  try {
    bytes = await fs.promises.readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  const { tensors, metadata } = parseSafetensors(bytes, file);
  const ids = tensors.get('input_ids');
  const logits = tensors.get('logits');
  if (!ids || !logits || ids.shape.length !== 2 || logits.shape.length !== 3 || logits.shape[0] !== ids.shape[0]) {
    throw new WorkbenchError('format_invalid', `${file} must hold input_ids [P, T] and logits [P, K, vocab].`, { file });
  }
  const [P, T] = ids.shape as [number, number];
  const inputIds = Array.from({ length: P }, (_, p) => Array.from(ids.data.subarray(p * T, (p + 1) * T), Math.round));
  return { probe: { inputIds }, logits: { shape: logits.shape, data: logits.data }, backend: metadata.backend ?? '' };
}
