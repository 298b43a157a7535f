// One LoRA training step on another backend against the same step on cpu (tfjs's reference kernels): the
// loss, every lora_A / lora_B gradient, the clipped gradient norm trainStep reports, and the adapter
// after its AdamW update, on the GPT-2 and the Qwen2 (Llama loader: GQA, biases, tied head) fixtures.
// `npm test` checks wasm; `npm run test:webgpu` checks webgpu (see test/helpers/backends.ts).
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LoraSettingsSchema } from '../../src-shared/config.ts';
import type { BackendName } from '../../src-shared/config.ts';
import { initBackend } from '../../src-worker/backend.ts';
import { loadCausalLM } from '../../src-worker/formats/model-folder.ts';
import { lora } from '../../src-worker/methods/lora.ts';
import { tf } from '../../src-worker/tf.ts';
import { AdamW } from '../../src-worker/train/adamw.ts';
import { causalLMLoss } from '../../src-worker/train/loss.ts';
import { trainStep } from '../../src-worker/train/loop.ts';
import { testBackends, valuesOf } from '../helpers/backends.ts';
import { maxAbsDiff } from '../../src-worker/export/probe.ts';

const fixtures = path.join(import.meta.dirname, '..', 'fixtures');
const CASES = [
  { name: 'gpt2-tiny', targetModules: ['c_attn', 'c_proj', 'c_fc'] },
  { name: 'llama-tiny-qwen2', targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] },
];
const LR = 1e-3;

interface StepRecord {
  loss: number;
  grads: Map<string, Float32Array>;
  reportedLoss: number;
  gradNorm: number;
  after: Map<string, Float32Array>;
}

async function stepOn(backend: BackendName, name: string, targetModules: string[]): Promise<StepRecord> {
  await initBackend(backend);
  const dir = path.join(fixtures, name);
  const { input_ids: rows } = JSON.parse(fs.readFileSync(path.join(dir, 'logits.json'), 'utf-8')) as { input_ids: number[][] };
  const model = await loadCausalLM(dir);
  const adapter = lora.create(model, LoraSettingsSchema.parse({ r: 4, alpha: 8, dropout: 0, targetModules }), 5);
  // PEFT starts lora_B at zero, which makes every lora_A gradient zero: give B values so both are tested.
  const state = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [k, t] of adapter.stateDict()) {
    state.set(k, { shape: t.shape, data: Float32Array.from(await valuesOf(t), (v, i) => (k.includes('lora_B') ? 0.2 * Math.cos(3 * i + k.length) : v)) });
    t.dispose();
  }
  adapter.loadStateDict(state);

  const [B, T] = [rows.length, rows[0]!.length];
  // The first two tokens of every row are prompt (no loss), as in completion-only fine-tuning.
  const lossMask = Float32Array.from({ length: B * T }, (_, i) => (i % T < 2 ? 0 : 1));
  const params = adapter.trainable();
  const variables = params.map((p) => p.variable);
  const nameOf = new Map(params.map((p) => [p.variable.name, p.name]));

  const ids = tf.tensor2d(rows, undefined, 'int32');
  const mask = tf.tensor2d(lossMask, [B, T]);
  const { value, grads } = tf.variableGrads(() => causalLMLoss(model.forward(ids, { adapters: adapter, training: true }), ids, mask), variables);
  const record: StepRecord = { loss: (await valuesOf(value))[0]!, grads: new Map(), reportedLoss: 0, gradNorm: 0, after: new Map() };
  for (const [variableName, g] of Object.entries(grads)) record.grads.set(nameOf.get(variableName)!, await valuesOf(g));
  tf.dispose([ids, mask, value, ...Object.values(grads)]);

  const optimizer = new AdamW([{ name: 'all', lr: LR, weightDecay: 0.01, params: params.map(({ name: n, variable }) => ({ name: n, variable })) }]);
  // Clip at 0.5 so the clipping path (global norm, rescale) is part of the step.
  const batch = { inputIds: Int32Array.from(rows.flat()), lossMask, batchSize: B, seqLen: T, tokenCount: B * T };
  const result = await trainStep(model, adapter, optimizer, batch, 0.5, nameOf, variables, 0);
  record.reportedLoss = result.loss;
  record.gradNorm = result.gradNorm;
  for (const p of params) record.after.set(p.name, await valuesOf(p.variable));
  optimizer.dispose();
  adapter.dispose();
  model.dispose();
  return record;
}

function maxAbs(a: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]!));
  return max;
}

afterAll(async () => {
  await initBackend('cpu');
});

describe.each(testBackends(['wasm']))('LoRA train step on %s', (backend) => {
  it.each(CASES)('$name: loss, gradients, gradient norm and the AdamW update match cpu', async ({ name, targetModules }) => {
    const reference = await stepOn('cpu', name, targetModules);
    const other = await stepOn(backend, name, targetModules);
    expect(Math.abs(other.loss - reference.loss)).toBeLessThan(1e-5);
    expect(Math.abs(other.reportedLoss - reference.reportedLoss)).toBeLessThan(1e-5);
    expect(Math.abs(other.gradNorm - reference.gradNorm) / reference.gradNorm).toBeLessThan(1e-4);
    expect([...other.grads.keys()].sort()).toEqual([...reference.grads.keys()].sort());
    for (const [key, g] of reference.grads) {
      // Relative to the tensor's largest entry: float32 summation order differs between kernels.
      expect(maxAbs(g), `${key} has a gradient`).toBeGreaterThan(1e-6);
      expect(maxAbsDiff(other.grads.get(key)!, g) / maxAbs(g), key).toBeLessThan(1e-4);
    }
    // The first AdamW step moves each entry by about lr * sign(g): agreeing to a small fraction of lr means
    // the moments, bias corrections and decoupled decay were computed alike.
    for (const [key, p] of reference.after) expect(maxAbsDiff(other.after.get(key)!, p), key).toBeLessThan(0.01 * LR);
  });
});
