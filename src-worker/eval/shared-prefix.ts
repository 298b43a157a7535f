// Multiple-choice scoring with one forward of the shared context: the options of one question (BBQ's
// three answers, QQP's " no" / " yes") differ only after the prompt, so the prompt runs once with a KV
// cache and the options' tokens run together as a batch from that cached state. The scores are the
// ones scoreRequests gives for each request alone (the same windows and targets, see score.ts); only
// the prompt's keys and values are computed once instead of once per option.
import { WorkbenchError } from '../../src-shared/errors.ts';
import type { TextTokenizer } from '../formats/tokenizer.ts';
import { KVCache } from '../models/kv-cache.ts';
import type { CausalLM } from '../models/types.ts';
import { tf } from '../tf.ts';
import { encodePair, prefixOf, scoreRequests, ScoringStopped, windowOf, type Score, type ScoreOptions, type ScoreRequest } from './score.ts';

/**
 * A KV cache that is filled once with the shared prefix (batch 1) and then lends it to forwards of
 * any batch size without growing: each branch forward sees prefix + its own positions, and the next
 * branch starts from the prefix again. It overrides KVCache's public surface only, so the models use
 * it through forwardWithCache unchanged.
 */
export class PrefixCache extends KVCache {
  private readonly prefixKeys: (tf.Tensor4D | null)[];
  private readonly prefixValues: (tf.Tensor4D | null)[];
  private branching = false;

  constructor(numLayers: number) {
    super(numLayers);
    this.prefixKeys = new Array<tf.Tensor4D | null>(numLayers).fill(null);
    this.prefixValues = new Array<tf.Tensor4D | null>(numLayers).fill(null);
  }

  /** After the prefix forward: later forwards branch from the prefix instead of appending to it. */
  freeze(): void {
    this.branching = true;
  }

  override append(layer: number, k: tf.Tensor4D, v: tf.Tensor4D): { k: tf.Tensor4D; v: tf.Tensor4D } {
    if (!this.branching) {
      const all = super.append(layer, k, v);
      this.prefixKeys[layer] = all.k;
      this.prefixValues[layer] = all.v;
      return all;
    }
    const pk = this.prefixKeys[layer];
    const pv = this.prefixValues[layer];
    if (!pk || !pv) return { k, v };
    // Built inside the branch forward's tidy, so these copies go when the forward ends.
    const rows = k.shape[0];
    return {
      k: tf.concat([rows === 1 ? pk : tf.tile(pk, [rows, 1, 1, 1]), k], 2) as tf.Tensor4D,
      v: tf.concat([rows === 1 ? pv : tf.tile(pv, [rows, 1, 1, 1]), v], 2) as tf.Tensor4D,
    };
  }

  override advance(count: number): void {
    if (!this.branching) super.advance(count);
  }

  override dispose(): void {
    super.dispose();
    this.prefixKeys.fill(null);
    this.prefixValues.fill(null);
  }
}

function commonPrefixLength(inputs: readonly (readonly number[])[]): number {
  let n = Math.min(...inputs.map((i) => i.length));
  for (const input of inputs.slice(1)) {
    let j = 0;
    while (j < n && input[j] === inputs[0]![j]) j++;
    n = j;
  }
  return n;
}

/** log-softmax at the given flat rows of [N, V] logits, read at the given tokens, with each row's argmax. */
async function logProbsAt(logits: tf.Tensor3D, rows: number[], tokens: number[]): Promise<{ lp: Float32Array; argmax: Int32Array }> {
  const V = logits.shape[2];
  const [lp, am] = tf.tidy(() => {
    const picked = tf.gather(tf.reshape(logits, [-1, V]), tf.tensor1d(rows, 'int32'));
    const flat = tf.reshape(tf.logSoftmax(picked), [rows.length * V]);
    return [
      tf.gather(
        flat,
        tf.tensor1d(
          tokens.map((t, k) => k * V + t),
          'int32',
        ),
      ),
      tf.argMax(picked, -1),
    ];
  });
  const out = { lp: (await lp.data()) as Float32Array, argmax: (await am.data()) as Int32Array };
  tf.dispose([lp, am]);
  return out;
}

/**
 * Scores one group of requests (the options of one question) with the longest common prefix of
 * their model inputs run once. Returns null when they share nothing, for the caller to score plainly.
 */
async function scoreGroup(model: CausalLM, group: readonly ScoreRequest[], options: ScoreOptions): Promise<Score[] | null> {
  const { maxPositions, vocabSize, numLayers } = model.config;
  const windows = group.map((r) => windowOf(r, maxPositions));
  for (const w of windows) {
    const bad = [...w.input, ...w.targets].find((id) => !Number.isInteger(id) || id < 0 || id >= vocabSize);
    if (bad !== undefined) throw new WorkbenchError('invalid_input', `Token id ${bad} is outside the model's vocabulary of ${vocabSize}.`);
  }
  const P = commonPrefixLength(windows.map((w) => w.input));
  if (P === 0) return null;
  const forwardOptions = { adapters: options.adapters ?? null, training: false };
  // Where each target's logits are: position p of an input predicts input[p + 1] (targets come last).
  const prefixRows: number[] = [];
  const prefixTokens: number[] = [];
  const branchRows: number[] = [];
  const branchTokens: number[] = [];
  const T = Math.max(...windows.map((w) => w.input.length - P));
  const source: { branch: boolean; k: number }[][] = windows.map((w, b) => {
    const first = w.input.length - w.targets.length;
    return w.targets.map((token, j) => {
      const p = first + j;
      if (p < P) {
        prefixRows.push(p);
        prefixTokens.push(token);
        return { branch: false, k: prefixRows.length - 1 };
      }
      branchRows.push(b * T + (p - P));
      branchTokens.push(token);
      return { branch: true, k: branchRows.length - 1 };
    });
  });

  const cache = new PrefixCache(numLayers);
  try {
    const prefixIds = tf.tensor2d([windows[0]!.input.slice(0, P)], [1, P], 'int32');
    const prefixLogits = model.forwardWithCache(prefixIds, cache, forwardOptions);
    prefixIds.dispose();
    const fromPrefix = prefixRows.length > 0 ? await logProbsAt(prefixLogits, prefixRows, prefixTokens) : null;
    prefixLogits.dispose();
    let fromBranch: { lp: Float32Array; argmax: Int32Array } | null = null;
    if (T > 0) {
      cache.freeze();
      // Right padding (with a token of the prefix) never reaches a real position of a causal model.
      const ids = new Int32Array(windows.length * T).fill(windows[0]!.input[0]!);
      windows.forEach((w, b) => ids.set(w.input.slice(P), b * T));
      const branchIds = tf.tensor2d(ids, [windows.length, T], 'int32');
      const branchLogits = model.forwardWithCache(branchIds, cache, forwardOptions);
      branchIds.dispose();
      fromBranch = branchRows.length > 0 ? await logProbsAt(branchLogits, branchRows, branchTokens) : null;
      branchLogits.dispose();
    }
    return windows.map((w, b) => {
      let sum = 0;
      let greedy = true;
      source[b]!.forEach(({ branch, k }, j) => {
        const from = (branch ? fromBranch : fromPrefix)!;
        sum += from.lp[k]!;
        if (from.argmax[k] !== w.targets[j]) greedy = false;
      });
      return { logLikelihood: sum, tokens: w.targets.length, isGreedy: greedy };
    });
  } finally {
    cache.dispose();
  }
}

/**
 * Scores groups of requests that share their context (each group: one question's options). Each
 * group costs one forward of the shared prefix and one batched forward of the options' remaining
 * tokens. Adapters that condition on the input (conditionsOnInput: SeLoRA's weights depend on the whole
 * prompt) are scored without sharing, as the prefix's cached states would not be the ones each full input gets.
 */
export async function scoreGroups(model: CausalLM, groups: readonly (readonly ScoreRequest[])[], options: ScoreOptions = {}): Promise<Score[][]> {
  if (options.adapters?.conditionsOnInput) {
    const flat = await scoreRequests(model, groups.flat(), options);
    let at = 0;
    return groups.map((g) => flat.slice(at, (at += g.length)));
  }
  const out: Score[][] = [];
  for (const group of groups) {
    if (options.shouldStop?.()) throw new ScoringStopped();
    if (group.length === 0) {
      out.push([]);
      continue;
    }
    out.push((await scoreGroup(model, group, options)) ?? (await scoreRequests(model, group, options)));
  }
  return out;
}

/** log p(continuation | context) for each question's options, the context run once per question. */
export async function multipleChoiceLogLikelihood(
  model: CausalLM,
  tokenizer: TextTokenizer,
  questions: readonly { context: string; continuations: readonly string[] }[],
  options: ScoreOptions = {},
): Promise<Score[][]> {
  const prefix = prefixOf(tokenizer, options);
  return scoreGroups(
    model,
    questions.map((q) => q.continuations.map((c) => encodePair(tokenizer, q.context, c, prefix))),
    options,
  );
}
