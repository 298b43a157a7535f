// Log-likelihood scoring for causal LMs, as lm-evaluation-harness does it (HFLM.loglikelihood and
// loglikelihood_rolling): requests are (context tokens, continuation tokens) pairs, run in batches
// padded on the right, and the score of a request is the sum of log p(continuation token | all
// tokens before it). Right padding cannot change a causal model's outputs at real positions, and
// padded positions are never read, so a text scores the same alone or in any batch.
import { WorkbenchError } from '../../src-shared/errors.ts';
import type { TextTokenizer } from '../formats/tokenizer.ts';
import type { AdapterModel } from '../methods/types.ts';
import type { CausalLM } from '../models/types.ts';
import { headTargetLogProbs } from '../kernels/head-cross-entropy.ts';
import { tf } from '../tf.ts';

export interface ScoreOptions {
  /** The adapter to score with; null or absent scores the base model. */
  adapters?: AdapterModel | null;
  /** Requests per forward pass. */
  batchSize?: number;
  /** The token the first token of a text is conditioned on; defaults to prefixTokenOf(tokenizer). */
  prefixTokenId?: number;
  /** Checked between batches; true ends scoring with a `stopped` error. */
  shouldStop?: () => boolean;
  /** Called after each batch with the requests scored so far. */
  onBatch?: (done: number, total: number) => void;
}

export interface ScoreRequest {
  /** Tokens the continuation is conditioned on (at least one: the prefix token for empty contexts). */
  context: readonly number[];
  continuation: readonly number[];
}

export interface Score {
  /** Sum of the natural-log probabilities of the continuation tokens. */
  logLikelihood: number;
  /** Continuation tokens scored. */
  tokens: number;
  /** True when every continuation token is the model's argmax (the harness's is_greedy). */
  isGreedy: boolean;
}

/** Thrown by the scorers when shouldStop() turns true; the job turns it into a `stopped` message. */
export class ScoringStopped extends Error {
  constructor() {
    super('Scoring stopped on request.');
  }
}

const DEFAULT_BATCH = 8;

/**
 * Fits a request into the model's window: the harness keeps the whole continuation and the last
 * tokens of the context (left truncation). The input is context + continuation without its last
 * token, and the continuation's log-probs are read from the last `continuation.length` positions.
 */
export function windowOf(request: ScoreRequest, maxPositions: number): { input: number[]; targets: number[] } {
  const { context, continuation } = request;
  if (context.length === 0) throw new WorkbenchError('internal', 'A scored continuation needs at least one context token (the prefix token).');
  if (continuation.length === 0) throw new WorkbenchError('invalid_input', 'A scored continuation has no tokens; every option must have some text.');
  if (continuation.length > maxPositions) {
    throw new WorkbenchError(
      'invalid_input',
      `A continuation of ${continuation.length} tokens does not fit the model's ${maxPositions} positions; shorten the answer options.`,
    );
  }
  const whole = [...context, ...continuation];
  return { input: whole.slice(-(maxPositions + 1), -1), targets: [...continuation] };
}

/** Log-likelihoods of continuation given context for each request, in request order. */
export async function scoreRequests(model: CausalLM, requests: readonly ScoreRequest[], options: ScoreOptions = {}): Promise<Score[]> {
  const batchSize = options.batchSize ?? DEFAULT_BATCH;
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new WorkbenchError('invalid_input', `Scoring batch size must be a whole number >= 1; got ${batchSize}.`);
  const { maxPositions, vocabSize } = model.config;
  const windows = requests.map((r) => windowOf(r, maxPositions));
  for (const w of windows) {
    const bad = [...w.input, ...w.targets].find((id) => !Number.isInteger(id) || id < 0 || id >= vocabSize);
    if (bad !== undefined) throw new WorkbenchError('invalid_input', `Token id ${bad} is outside the model's vocabulary of ${vocabSize}.`);
  }
  // Longest first, as the harness sorts: batches hold similar lengths, so little compute goes to padding.
  const order = windows.map((_, i) => i).sort((a, b) => windows[b]!.input.length - windows[a]!.input.length || a - b);
  const scores: Score[] = new Array(requests.length);
  const pad = windows[0]?.input[0] ?? 0;
  for (let start = 0; start < order.length; start += batchSize) {
    if (options.shouldStop?.()) throw new ScoringStopped();
    const batch = order.slice(start, start + batchSize);
    const T = windows[batch[0]!]!.input.length;
    const B = batch.length;
    const ids = new Int32Array(B * T).fill(pad);
    // For the k-th scored token: its row in the flat [B*T] positions, and k * V + token in the picked rows.
    const gatherIdx = new Int32Array(batch.reduce((s, i) => s + windows[i]!.targets.length, 0));
    const positionIdx = new Int32Array(gatherIdx.length);
    let k = 0;
    batch.forEach((req, b) => {
      const { input, targets } = windows[req]!;
      ids.set(input, b * T);
      const first = input.length - targets.length;
      targets.forEach((token, j) => {
        const pos = b * T + first + j;
        positionIdx[k] = pos;
        gatherIdx[k] = k * vocabSize + token;
        k++;
      });
    });
    if (options.adapters?.prepare) {
      options.adapters.prepare(
        model,
        batch.map((i) => windows[i]!.input),
      );
    }
    const [logProbs, argmaxes] = tf.tidy(() => {
      const input = tf.tensor2d(ids, [B, T], 'int32');
      const forwardOptions = { adapters: options.adapters ?? null, training: false };
      if (model.headWeight) {
        // Only the K scored positions go through the head, in chunks (kernels/head-cross-entropy.ts).
        const hidden = tf.reshape(model.hiddenStates(input, forwardOptions), [B * T, -1]) as tf.Tensor2D;
        const scored = tf.gather(hidden, tf.tensor1d(positionIdx, 'int32'));
        const targets = Int32Array.from(gatherIdx, (flat, k) => flat - k * vocabSize);
        const { logProbs: lp, argmax } = headTargetLogProbs(scored, model.headWeight(forwardOptions.adapters), targets);
        return [lp, argmax];
      }
      const logits = model.forward(input, forwardOptions);
      // Only the K scored positions go through log-softmax; k * V + token then indexes [K, V] safely in int32.
      const rows = tf.gather(tf.reshape(logits, [B * T, vocabSize]), tf.tensor1d(positionIdx, 'int32'));
      const lp = tf.reshape(tf.logSoftmax(rows), [gatherIdx.length * vocabSize]);
      return [tf.gather(lp, tf.tensor1d(gatherIdx, 'int32')), tf.argMax(rows, -1)];
    });
    const lpData = (await logProbs.data()) as Float32Array;
    const amData = (await argmaxes.data()) as Int32Array;
    logProbs.dispose();
    argmaxes.dispose();
    k = 0;
    for (const req of batch) {
      const { targets } = windows[req]!;
      let sum = 0;
      let greedy = true;
      for (const token of targets) {
        sum += lpData[k]!;
        if (amData[k] !== token) greedy = false;
        k++;
      }
      scores[req] = { logLikelihood: sum, tokens: targets.length, isGreedy: greedy };
    }
    options.onBatch?.(Math.min(start + batchSize, order.length), order.length);
  }
  return scores;
}

/**
 * The harness's get_rolling_token_windows with context_len 1: windows of up to maxPositions
 * predicted tokens, the first conditioned on the prefix token, each later one on the maxPositions
 * tokens before it, so every token is scored exactly once with as much context as fits.
 */
export function rollingWindows(tokens: readonly number[], prefixTokenId: number, maxPositions: number): ScoreRequest[] {
  return conditionalWindows([prefixTokenId], tokens, maxPositions);
}

/**
 * Rolling windows over a continuation that follows a context: every continuation token is scored
 * exactly once, conditioned on as many of the tokens before it (context included) as fit the
 * model's window, so a reply longer than the window is still scored whole.
 */
export function conditionalWindows(context: readonly number[], continuation: readonly number[], maxPositions: number): ScoreRequest[] {
  const all = [...context, ...continuation];
  const windows: ScoreRequest[] = [];
  let predicted = context.length;
  while (predicted < all.length) {
    const end = Math.min(all.length, predicted + maxPositions);
    windows.push({ context: all.slice(Math.max(0, end - maxPositions - 1), predicted), continuation: all.slice(predicted, end) });
    predicted = end;
  }
  return windows;
}

/**
 * lm-evaluation-harness's prefix_token_id (HFLM): the tokenizer's BOS when it has one, else its EOS.
 * A text scored without context conditions its first token on it.
 */
export function prefixTokenOf(tokenizer: TextTokenizer): number {
  return tokenizer.namedBosTokenId ?? tokenizer.bosTokenId ?? tokenizer.eosTokenId;
}

export function prefixOf(tokenizer: TextTokenizer, options: ScoreOptions): number {
  return options.prefixTokenId ?? prefixTokenOf(tokenizer);
}

/**
 * log p(text) = sum over its tokens of log p(token_t | prefix token, tokens_<t): the causal-LM score
 * of CrowS-Pairs and StereoSet intrasentence in lm-evaluation-harness (empty context, the first
 * token conditioned on BOS/EOS). Texts longer than the model's window are scored in rolling windows.
 */
export async function sequenceLogLikelihood(model: CausalLM, tokenizer: TextTokenizer, texts: readonly string[], options: ScoreOptions = {}): Promise<Score[]> {
  const prefix = prefixOf(tokenizer, options);
  const owner: number[] = [];
  const requests: ScoreRequest[] = [];
  texts.forEach((text, i) => {
    const tokens = tokenizer.encode(text);
    if (tokens.length === 0) throw new WorkbenchError('invalid_input', `Text ${i + 1} of the scored set is empty; every sentence needs some text.`);
    for (const w of rollingWindows(tokens, prefix, model.config.maxPositions)) {
      requests.push(w);
      owner.push(i);
    }
  });
  const scores = await scoreRequests(model, requests, options);
  const out: Score[] = texts.map(() => ({ logLikelihood: 0, tokens: 0, isGreedy: true }));
  scores.forEach((s, r) => {
    const o = out[owner[r]!]!;
    o.logLikelihood += s.logLikelihood;
    o.tokens += s.tokens;
    o.isGreedy &&= s.isGreedy;
  });
  return out;
}

/**
 * Tokenizes context and continuation as the harness does (_encode_pair): trailing spaces of the
 * context move to the front of the continuation, then the pair is encoded whole and split where the
 * context's own encoding ends, so BPE merges across the boundary match how the text would be read.
 * An empty context becomes the prefix token; a non-empty one gets none (the harness adds no BOS).
 */
export function encodePair(tokenizer: TextTokenizer, context: string, continuation: string, prefixTokenId: number): ScoreRequest {
  const spaces = context.length - context.trimEnd().length;
  if (spaces > 0) {
    continuation = context.slice(context.length - spaces) + continuation;
    context = context.slice(0, context.length - spaces);
  }
  const whole = tokenizer.encode(context + continuation);
  const contextLength = tokenizer.encode(context).length;
  const ctx = whole.slice(0, contextLength);
  return { context: ctx.length === 0 ? [prefixTokenId] : ctx, continuation: whole.slice(contextLength) };
}

/** log p(continuation | context) for each continuation of one context (multiple choice). */
export async function continuationLogLikelihood(
  model: CausalLM,
  tokenizer: TextTokenizer,
  context: string,
  continuations: readonly string[],
  options: ScoreOptions = {},
): Promise<Score[]> {
  return pairLogLikelihood(
    model,
    tokenizer,
    continuations.map((c) => ({ context, continuation: c })),
    options,
  );
}

/** log p(continuation | context) for many (context, continuation) pairs, batched together. */
export async function pairLogLikelihood(
  model: CausalLM,
  tokenizer: TextTokenizer,
  pairs: readonly { context: string; continuation: string }[],
  options: ScoreOptions = {},
): Promise<Score[]> {
  const prefix = prefixOf(tokenizer, options);
  return scoreRequests(
    model,
    pairs.map((p) => encodePair(tokenizer, p.context, p.continuation, prefix)),
    options,
  );
}
