// Text generation from a causal LM: greedy or sampled (temperature, top-k, top-p), with a KV cache so
// each new token costs one position's forward. The filters run in the order of Hugging Face's
// generate (TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper); sampling draws from a
// seeded generator, so a seed reproduces a sample on every backend (up to float ties).
import { WorkbenchError } from '../src-shared/errors.ts';
import { KVCache } from './models/kv-cache.ts';
import type { AdapterHooks, CausalLM } from './models/types.ts';
import { mulberry32 } from './rng.ts';
import { tf } from './tf.ts';

export interface SamplingOptions {
  /** 0 picks the most likely token (greedy); above 0 samples from softmax(logits / temperature). */
  temperature: number;
  /** Sample among the k most likely tokens only; 0 = no limit. */
  topK: number;
  /** Sample among the fewest most likely tokens whose probabilities sum to at least top_p (nucleus); 1 = no limit. */
  topP: number;
}

export interface GenerateOptions extends Partial<SamplingOptions> {
  maxNewTokens: number;
  /** Seed of the sampler (unused when greedy). */
  seed?: number;
  /** Generation stops after emitting one of these (the stop token is included in the result). */
  stopTokenIds?: number[];
  /** false recomputes the whole sequence every step: slower, for checking the cache. */
  useCache?: boolean;
  adapters?: AdapterHooks | null;
  /** Called with each new token as it is chosen. */
  onToken?: (id: number) => void;
}

export interface GenerateResult {
  /** The new tokens, without the prompt. */
  tokens: number[];
  stoppedBy: 'stop_token' | 'max_new_tokens' | 'max_positions';
}

function invalid(field: string, message: string): never {
  throw new WorkbenchError('invalid_input', `Generation setting ${field}: ${message}`, { issues: [{ path: field, message }] });
}

function checkSampling(o: SamplingOptions): void {
  if (!(o.temperature >= 0) || !Number.isFinite(o.temperature)) invalid('temperature', `${o.temperature} must be a number >= 0 (0 = greedy)`);
  if (!Number.isInteger(o.topK) || o.topK < 0) invalid('topK', `${o.topK} must be a whole number >= 0 (0 = off)`);
  if (!(o.topP > 0 && o.topP <= 1)) invalid('topP', `${o.topP} must be in (0, 1] (1 = off)`);
}

/** Index of the largest value, the first one on ties (as torch.argmax and llama2.c's run.c). */
export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

/** One token from next-token logits; `random` gives uniform numbers in [0, 1). */
export function sampleToken(logits: ArrayLike<number>, options: SamplingOptions, random: () => number): number {
  const { temperature, topK, topP } = options;
  if (temperature === 0) return argmax(logits);
  let order = Array.from({ length: logits.length }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]! || a - b);
  if (topK > 0) order = order.slice(0, topK);
  const top = logits[order[0]!]! / temperature;
  const weights = order.map((i) => Math.exp(logits[i]! / temperature - top));
  const total = weights.reduce((s, w) => s + w, 0);
  let keep = order.length;
  if (topP < 1) {
    // Smallest prefix of the sorted tokens holding at least top_p of the probability (always >= 1 token).
    let mass = 0;
    for (keep = 0; keep < order.length && mass < topP * total; keep++) mass += weights[keep]!;
  }
  let kept = 0;
  for (let i = 0; i < keep; i++) kept += weights[i]!;
  let u = random() * kept;
  for (let i = 0; i < keep; i++) {
    u -= weights[i]!;
    if (u < 0) return order[i]!;
  }
  return order[keep - 1]!; // u landed on the rounding error at the top end
}

/** The last position's logits of a [1, T, V] tensor, as a plain array; disposes `logits`. */
async function lastLogits(logits: tf.Tensor3D): Promise<Float32Array> {
  const [, T, V] = logits.shape;
  const last = tf.slice(logits, [0, T - 1, 0], [1, 1, V]);
  logits.dispose();
  const data = (await last.data()) as Float32Array;
  last.dispose();
  return data;
}

/** Continues `promptIds` (one sequence, at least one token, e.g. BOS for Llama models). */
export async function generate(model: CausalLM, promptIds: number[], options: GenerateOptions): Promise<GenerateResult> {
  const sampling: SamplingOptions = { temperature: options.temperature ?? 0, topK: options.topK ?? 0, topP: options.topP ?? 1 };
  checkSampling(sampling);
  if (!Number.isInteger(options.maxNewTokens) || options.maxNewTokens < 0) invalid('maxNewTokens', `${options.maxNewTokens} must be a whole number >= 0`);
  const { vocabSize, maxPositions } = model.config;
  if (promptIds.length === 0) invalid('prompt', 'is empty; start it with at least one token (the BOS token for Llama models)');
  const badId = promptIds.find((id) => !Number.isInteger(id) || id < 0 || id >= vocabSize);
  if (badId !== undefined) invalid('prompt', `token id ${badId} is outside the model's vocabulary of ${vocabSize}`);
  if (promptIds.length > maxPositions) invalid('prompt', `${promptIds.length} tokens exceed the model's ${maxPositions} positions`);

  const random = mulberry32(options.seed ?? 0);
  const stop = new Set(options.stopTokenIds ?? []);
  const forwardOptions = { adapters: options.adapters ?? null, training: false };
  const sequence = [...promptIds];
  const tokens: number[] = [];
  const cache = options.useCache === false ? null : new KVCache(model.config.numLayers);
  let pending = promptIds; // tokens the model has not seen yet
  try {
    for (;;) {
      if (tokens.length >= options.maxNewTokens) return { tokens, stoppedBy: 'max_new_tokens' };
      if (sequence.length >= maxPositions) return { tokens, stoppedBy: 'max_positions' };
      const input = cache ? pending : sequence;
      const ids = tf.tensor2d([input], [1, input.length], 'int32');
      const logits = cache ? model.forwardWithCache(ids, cache, forwardOptions) : model.forward(ids, forwardOptions);
      ids.dispose();
      const next = sampleToken(await lastLogits(logits), sampling, random.next);
      tokens.push(next);
      sequence.push(next);
      pending = [next];
      options.onToken?.(next);
      if (stop.has(next)) return { tokens, stoppedBy: 'stop_token' };
    }
  } finally {
    cache?.dispose();
  }
}
