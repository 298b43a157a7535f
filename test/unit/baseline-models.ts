// Shared by the baseline methods' tests (full fine-tuning, BitFit, prompt tuning, Houlsby, QLoRA):
// tiny random GPT-2 and Llama models and the next-token loss the gradient checks differentiate.
import type { AdapterModel } from '../../src-worker/methods/types.ts';
import { AdamW } from '../../src-worker/train/adamw.ts';
import { createGPT2, randomGPT2Weights, type GPT2Config } from '../../src-worker/models/gpt2.ts';
import { createLlama, randomLlamaWeights, type LlamaConfig } from '../../src-worker/models/llama.ts';
import type { CausalLM } from '../../src-worker/models/types.ts';
import { tf } from '../../src-worker/tf.ts';

export const tinyGPT2: GPT2Config = {
  vocabSize: 24,
  nPositions: 16,
  nEmbd: 8,
  nLayer: 2,
  nHead: 2,
  nInner: 16,
  layerNormEpsilon: 1e-5,
  activation: 'gelu_new',
  scaleAttnByInverseLayerIdx: false,
};

export const tinyLlama: LlamaConfig = {
  modelType: 'llama',
  vocabSize: 24,
  hiddenSize: 16,
  intermediateSize: 24,
  numHiddenLayers: 2,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  headDim: 4,
  maxPositionEmbeddings: 16,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  ropeScaling: null,
  qkvBias: false,
  oBias: false,
  mlpBias: false,
  tieWordEmbeddings: false,
};

export const gpt2 = (seed = 11, std = 0.3): CausalLM => createGPT2(tinyGPT2, randomGPT2Weights(tinyGPT2, seed, std));
export const llama = (over: Partial<LlamaConfig> = {}, seed = 11, std = 0.3): CausalLM => {
  const config = { ...tinyLlama, ...over };
  return createLlama(config, randomLlamaWeights(config, seed, std));
};

export const IDS = [
  [1, 5, 9, 2, 7, 3],
  [4, 4, 0, 23, 11, 6],
];
const NEXT = [
  [5, 9, 2, 7, 3, 1],
  [4, 0, 23, 11, 6, 8],
];

/** Mean next-token cross-entropy of the adapted model on IDS (a closure the gradient check calls repeatedly). */
export function lossOf(model: CausalLM, adapter: AdapterModel | null): { loss: () => tf.Scalar; dispose: () => void } {
  const ids = tf.tensor2d(IDS, undefined, 'int32');
  const targets = tf.oneHot(tf.tensor2d(NEXT, undefined, 'int32'), model.config.vocabSize);
  return {
    loss: () =>
      tf.tidy(() => {
        const logits = model.forward(ids, { adapters: adapter, training: true });
        return tf.neg(tf.mean(tf.sum(tf.mul(targets, tf.logSoftmax(logits)), -1))) as tf.Scalar;
      }),
    dispose: () => tf.dispose([ids, targets]),
  };
}

export function logitsOf(model: CausalLM, adapter: AdapterModel | null, ids: number[][] = IDS): Float32Array {
  const input = tf.tensor2d(ids, undefined, 'int32');
  const out = model.forward(input, { adapters: adapter, training: false });
  const data = out.dataSync() as Float32Array;
  tf.dispose([input, out]);
  return data;
}

/** Assigns seeded values of scale `std` to every trainable tensor whose name matches `pattern` (zero-initialised tensors hide the others' gradients). */
export function randomize(adapter: AdapterModel, pattern: RegExp, seed: number, std = 0.3): void {
  let s = seed;
  for (const { name, variable } of adapter.trainable()) {
    if (!pattern.test(name)) continue;
    const data = Float32Array.from({ length: variable.size }, () => {
      s = (s * 1103515245 + 12345) % 2 ** 31;
      return (s / 2 ** 31 - 0.5) * 2 * std;
    });
    tf.tidy(() => variable.assign(tf.tensor(data, variable.shape)));
  }
}

/** One AdamW step on lossOf's loss for every trainable tensor of `adapter`. */
export function adamWStep(model: CausalLM, adapter: AdapterModel, lr = 1e-2): void {
  const { loss, dispose } = lossOf(model, adapter);
  const trainable = adapter.trainable();
  const optimizer = new AdamW([{ name: 'all', lr, weightDecay: 0, params: trainable.map((t) => ({ name: t.name, variable: t.variable })) }]);
  const { value, grads } = tf.variableGrads(
    loss,
    trainable.map((t) => t.variable),
  );
  const named = new Map(trainable.map((t) => [t.name, grads[t.variable.name]!]));
  optimizer.step(named);
  tf.dispose([value, ...Object.values(grads)]);
  optimizer.dispose();
  dispose();
}
