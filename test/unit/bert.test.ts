// BERT encoders against PyTorch: scripts/make-fixtures-bert.py evaluates BertForMaskedLM in float64 on
// the float32 weights of a tiny random model (2 layers, hidden 32, 4 heads) with a WordPiece tokenizer;
// our float32 hidden states, pooled embeddings, MLM logits and pseudo-log-likelihoods must agree within
// 1e-4 on cpu and wasm (and webgpu under `npm run test:webgpu`), for a padded batch with an attention
// mask. Then key variants (BertModel / sentence-transformers saves), the loader's checks, and LoRA on
// query/value with a gradient check.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { initBackend } from '../../src-worker/backend.ts';
import { loadCausalLM, loadEncoder, readWeights } from '../../src-worker/formats/model-folder.ts';
import { loadTokenizer } from '../../src-worker/formats/tokenizer.ts';
import { getMethod } from '../../src-worker/methods/index.ts';
import type { AdapterModel } from '../../src-worker/methods/types.ts';
import { bertConfigFromHF, createBert, pseudoLogLikelihood, type BertEncoder, type WeightData } from '../../src-worker/models/bert.ts';
import type { AdapterHooks, CausalLM } from '../../src-worker/models/types.ts';
import { tf } from '../../src-worker/tf.ts';
import { testBackends, valuesOf } from '../helpers/backends.ts';
import { checkGradients } from '../helpers/finite-differences.ts';
import { maxAbsDiff } from '../../src-worker/export/probe.ts';

const dir = path.join(import.meta.dirname, '..', 'fixtures', 'bert-tiny');
interface Reference {
  encodings: { text: string; ids: number[] }[];
  input_ids: number[][];
  attention_mask: number[][];
  hidden_states: number[];
  hidden_shape: number[];
  mean_pooled: number[];
  pooler_output: number[];
  mlm_logits: number[];
  logits_shape: number[];
  pseudo_log_likelihood: number[];
}
const reference = JSON.parse(fs.readFileSync(path.join(dir, 'reference.json'), 'utf-8')) as Reference;
const hfConfig = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf-8')) as Record<string, unknown>;
const config = bertConfigFromHF(hfConfig);
const C = config.hiddenSize;

/** Runs `f` on the reference batch and returns its output's values. */
function run(f: (ids: tf.Tensor2D, mask: tf.Tensor2D) => tf.Tensor, ids = reference.input_ids, mask = reference.attention_mask): Float32Array {
  const input = tf.tensor2d(ids, undefined, 'int32');
  const m = tf.tensor2d(mask, undefined, 'float32');
  const out = f(input, m);
  const data = out.dataSync() as Float32Array;
  tf.dispose([input, m, out]);
  return data;
}

/** As run, read with data(): the parity checks also run on webgpu, which cannot read synchronously in Node. */
async function runAsync(f: (ids: tf.Tensor2D, mask: tf.Tensor2D) => tf.Tensor): Promise<Float32Array> {
  const input = tf.tensor2d(reference.input_ids, undefined, 'int32');
  const m = tf.tensor2d(reference.attention_mask, undefined, 'float32');
  const out = f(input, m);
  const data = await valuesOf(out);
  tf.dispose([input, m, out]);
  return data;
}

function expectInvalid(fn: () => unknown, pattern: RegExp): void {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(WorkbenchError);
    expect((error as WorkbenchError).code).toBe('model_invalid');
    expect((error as WorkbenchError).message).toMatch(pattern);
    return;
  }
  throw new Error(`expected an error matching ${pattern}`);
}

/** The fixture's weights as another save would key them. */
async function weightsAs(transform: (key: string) => string | null): Promise<Map<string, WeightData>> {
  const out = new Map<string, WeightData>();
  for (const [key, value] of await readWeights([path.join(dir, 'model.safetensors')])) {
    const renamed = transform(key);
    if (renamed !== null) out.set(renamed, value);
  }
  return out;
}

// The LoRA implementation only reads linearModules() and calls delta(); encoders are not CausalLMs.
const asAdaptable = (encoder: BertEncoder) => encoder as unknown as CausalLM;

afterAll(async () => {
  await initBackend('cpu');
});

describe.each(testBackends(['cpu', 'wasm']))('BERT parity with PyTorch on %s', (backend) => {
  it('hidden states, mean pooling, pooler and MLM logits of a padded batch match within 1e-4; nothing leaks', async () => {
    await initBackend(backend);
    const before = tf.memory().numTensors;
    const encoder = await loadEncoder(dir);
    expect(encoder.config).toMatchObject({ family: 'bert', hasMlmHead: true, hasPooler: true, numLayers: 2, hiddenSize: 32 });
    expect(reference.attention_mask.some((row) => row.includes(0))).toBe(true);
    const hidden = await runAsync((ids, mask) => encoder.hiddenStates(ids, mask));
    expect(maxAbsDiff(hidden, reference.hidden_states)).toBeLessThan(1e-4);
    expect(maxAbsDiff(await runAsync((ids, mask) => encoder.meanPooled(ids, mask)), reference.mean_pooled)).toBeLessThan(1e-4);
    expect(maxAbsDiff(await runAsync((ids, mask) => encoder.poolerOutput(ids, mask)), reference.pooler_output)).toBeLessThan(1e-4);
    const logits = await runAsync((ids, mask) => encoder.mlmLogits(ids, mask));
    expect(logits.length).toBe(reference.logits_shape.reduce((a, b) => a * b, 1));
    expect(maxAbsDiff(logits, reference.mlm_logits)).toBeLessThan(1e-4);
    encoder.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('pseudo-log-likelihood (each token masked in turn, batched) matches within 1e-4', async () => {
    await initBackend(backend);
    const encoder = await loadEncoder(dir);
    const tokenizer = await loadTokenizer(dir);
    for (const [i, { text, ids }] of reference.encodings.entries()) {
      // Batches of 3 rows: texts of 7-10 scored tokens span several chunks, the last one partial.
      const { score, tokenScores } = await pseudoLogLikelihood(encoder, tokenizer, text, { batchSize: 3 });
      expect(tokenScores.map((t) => t.id)).toEqual(ids.slice(1, -1));
      expect(Math.abs(score - reference.pseudo_log_likelihood[i]!), text).toBeLessThan(1e-4);
    }
    encoder.dispose();
  });
});

describe('BERT WordPiece tokenizer', () => {
  it('adds [CLS] and [SEP] only when asked; ids match BertTokenizer (lowercase, accents stripped, punctuation split)', async () => {
    const tokenizer = await loadTokenizer(dir);
    for (const { text, ids } of reference.encodings) {
      expect(tokenizer.encodeWithSpecialTokens(text), text).toEqual(ids);
      expect(tokenizer.encode(text), text).toEqual(ids.slice(1, -1));
    }
    expect(tokenizer.maskTokenId).toBe(4);
    expect([...tokenizer.specialTokenIds].sort()).toEqual([0, 1, 2, 3, 4]);
    expect([tokenizer.eosTokenId, tokenizer.padTokenId]).toEqual([3, 0]); // no eos_token: [SEP] ends sequences
    expect(tokenizer.decode(tokenizer.encode('Café zebra?'))).toBe('cafe zebra?');
  });

  it('decoders keep adding no special tokens, and have no mask token', async () => {
    const tokenizer = await loadTokenizer(path.join(dir, '..', 'llama-tiny'));
    expect(tokenizer.encode('Once upon a time')[0]).not.toBe(1);
    expect(tokenizer.encodeWithSpecialTokens('Once upon a time')).toEqual([1, ...tokenizer.encode('Once upon a time')]);
    expect(tokenizer.maskTokenId).toBeNull();
  });
});

describe('BERT forward', () => {
  it('padding does not change the hidden states of real tokens', async () => {
    await initBackend('cpu');
    const encoder = await loadEncoder(dir);
    const ids = reference.encodings[0]!.ids;
    const alone = run((i, m) => encoder.hiddenStates(i, m), [ids], [ids.map(() => 1)]);
    const padded = run((i, m) => encoder.hiddenStates(i, m), [[...ids, 0, 0, 0]], [[...ids.map(() => 1), 0, 0, 0]]);
    expect(maxAbsDiff(alone, padded.subarray(0, ids.length * C))).toBeLessThan(1e-5);
    // Without the mask the padding is attended to and the states move.
    const unmasked = run((i) => encoder.hiddenStates(i, null), [[...ids, 0, 0, 0]], [[...ids.map(() => 1), 0, 0, 0]]);
    expect(maxAbsDiff(alone, unmasked.subarray(0, ids.length * C))).toBeGreaterThan(1e-3);
    encoder.dispose();
  });

  it('mlmLogitsAt gives the rows of mlmLogits at the chosen positions (head run on those rows only)', async () => {
    await initBackend('cpu');
    const encoder = await loadEncoder(dir);
    const [, T, V] = reference.logits_shape as [number, number, number];
    const positions = [
      [0, 3],
      [2, 7],
      [1, 0],
      [0, 3],
    ] as const;
    const picked = run((i, m) => encoder.mlmLogitsAt(i, positions, m));
    const expected = positions.flatMap(([b, t]) => reference.mlm_logits.slice((b * T + t) * V, (b * T + t + 1) * V));
    expect(maxAbsDiff(picked, expected)).toBeLessThan(1e-4);
    expect(() => run((i, m) => encoder.mlmLogitsAt(i, [[3, 0]], m))).toThrow(/position \[3,0\] is outside the \[3,11\] batch/);
    encoder.dispose();
  });

  it('loads BertModel / sentence-transformers keys (no "bert." prefix, no heads) with the same hidden states', async () => {
    await initBackend('cpu');
    const full = await loadEncoder(dir);
    const expected = run((i, m) => full.hiddenStates(i, m));
    expect(full.linearModules()[0]!.path).toBe('bert.encoder.layer.0.attention.self.query');
    full.dispose();
    const bare = createBert(config, await weightsAs((k) => (k.startsWith('cls.') || k.startsWith('bert.pooler') ? null : k.replace(/^bert\./, ''))));
    expect(bare.config).toMatchObject({ hasMlmHead: false, hasPooler: false });
    expect(
      maxAbsDiff(
        run((i, m) => bare.hiddenStates(i, m)),
        expected,
      ),
    ).toBe(0);
    expect(
      bare
        .linearModules()
        .map((m) => m.path)
        .slice(0, 6),
    ).toEqual([
      'encoder.layer.0.attention.self.query',
      'encoder.layer.0.attention.self.key',
      'encoder.layer.0.attention.self.value',
      'encoder.layer.0.attention.output.dense',
      'encoder.layer.0.intermediate.dense',
      'encoder.layer.0.output.dense',
    ]);
    expect(() => run((i, m) => bare.mlmLogits(i, m))).toThrow(/no masked-LM head/);
    bare.dispose();
  });

  it('uses a saved decoder weight equal to the embeddings as tied, and an untied one as the head', async () => {
    await initBackend('cpu');
    const weights = await weightsAs((k) => k);
    const embedding = weights.get('bert.embeddings.word_embeddings.weight')!;
    const tied = createBert(
      config,
      new Map([...weights, ['cls.predictions.decoder.weight', embedding], ['cls.predictions.decoder.bias', weights.get('cls.predictions.bias')!]]),
    );
    expect(
      maxAbsDiff(
        run((i, m) => tied.mlmLogits(i, m)),
        reference.mlm_logits,
      ),
    ).toBeLessThan(1e-4);
    const plain = createBert(config, weights);
    expect(tied.parameterCount()).toBe(plain.parameterCount()); // the duplicate is not counted twice
    tied.dispose();
    plain.dispose();
    const untied = createBert(
      config,
      new Map([...weights, ['cls.predictions.decoder.weight', { shape: embedding.shape, data: embedding.data.map((v) => -v) }]]),
    );
    expect(
      maxAbsDiff(
        run((i, m) => untied.mlmLogits(i, m)),
        reference.mlm_logits,
      ),
    ).toBeGreaterThan(1);
    untied.dispose();
  });

  it('names missing, misshapen, unexpected and partial-head tensors, and bad config fields', async () => {
    const weights = await weightsAs((k) => k);
    const missing = new Map(weights);
    missing.delete('bert.encoder.layer.1.output.dense.weight');
    expectInvalid(() => createBert(config, missing), /missing tensor encoder\.layer\.1\.output\.dense\.weight \(expected shape \[32,64\]\)/);
    const wrong = new Map(weights);
    wrong.set('bert.encoder.layer.0.attention.self.key.weight', { shape: [32, 16], data: new Float32Array(512) });
    expectInvalid(() => createBert(config, wrong), /encoder\.layer\.0\.attention\.self\.key\.weight has shape \[32,16\], expected \[32,32\]/);
    const partial = new Map(weights);
    partial.delete('cls.predictions.transform.LayerNorm.bias');
    expectInvalid(() => createBert(config, partial), /incomplete masked-LM head: missing tensor cls\.predictions\.transform\.LayerNorm\.bias/);
    const extra = new Map(weights);
    extra.set('bert.encoder.layer.2.output.dense.bias', { shape: [32], data: new Float32Array(32) });
    expectInvalid(() => createBert(config, extra), /unexpected tensors for BERT with 2 layers: encoder\.layer\.2\.output\.dense\.bias/);
    expectInvalid(() => bertConfigFromHF({ ...hfConfig, num_attention_heads: 5 }), /hidden_size 32 is not divisible by num_attention_heads 5/);
    expectInvalid(() => bertConfigFromHF({ ...hfConfig, position_embedding_type: 'relative_key' }), /position_embedding_type "relative_key" is not supported/);
    expectInvalid(() => bertConfigFromHF({ ...hfConfig, hidden_act: 'silu' }), /hidden_act "silu" is not supported; supported: gelu, gelu_new, relu/);
    await expect(loadEncoder(path.join(dir, '..', 'llama-tiny'))).rejects.toThrow(/not a supported encoder; supported encoder types: bert\. It is a decoder/);
    await expect(loadCausalLM(dir)).rejects.toThrow(/model_type "bert" is not supported/);
  });
});

describe('LoRA on BERT', () => {
  const settingsFor = (targetModules: string[]) => getMethod('lora').parseSettings({ r: 2, alpha: 4, dropout: 0, targetModules });

  /** Gives every lora_B entry a value (PEFT starts B at zero, which would hide the adapter). */
  function randomizeB(adapter: AdapterModel): void {
    const state = new Map(
      [...adapter.stateDict()].map(([k, t]) => {
        const data = Float32Array.from(t.dataSync() as Float32Array, (v, i) => (k.includes('lora_B') ? 0.3 * Math.sin(i + k.length) : v));
        t.dispose();
        return [k, { shape: t.shape, data }];
      }),
    );
    adapter.loadStateDict(state);
  }

  it('on query/value: B = 0 equals the base, non-zero B changes the outputs, PEFT keys keep "bert."', async () => {
    await initBackend('cpu');
    const encoder = await loadEncoder(dir);
    const adapter = getMethod('lora').create(asAdaptable(encoder), settingsFor(['query', 'value']), 1);
    expect(adapter.targets.map((t) => t.path)).toEqual([0, 1].flatMap((i) => ['query', 'value'].map((n) => `bert.encoder.layer.${i}.attention.self.${n}`)));
    const state = adapter.stateDict();
    expect(state.get('base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight')!.shape).toEqual([2, 32]);
    tf.dispose([...state.values()]);
    const base = run((i, m) => encoder.mlmLogits(i, m));
    expect(
      maxAbsDiff(
        run((i, m) => encoder.mlmLogits(i, m, { adapters: adapter })),
        base,
      ),
    ).toBe(0);
    randomizeB(adapter);
    expect(
      maxAbsDiff(
        run((i, m) => encoder.mlmLogits(i, m, { adapters: adapter })),
        base,
      ),
    ).toBeGreaterThan(1e-2);
    expect(
      maxAbsDiff(
        run((i, m) => encoder.meanPooled(i, m, { adapters: adapter })),
        reference.mean_pooled,
      ),
    ).toBeGreaterThan(1e-2);
    adapter.dispose();
    encoder.dispose();
  });

  it('consults the hooks at every encoder linear, by HF module path, in order', async () => {
    await initBackend('cpu');
    const encoder = await loadEncoder(dir);
    const seen: string[] = [];
    const recorder: AdapterHooks = {
      delta: (p, x) => {
        seen.push(`${p}:${x.shape[1]}`);
        return null;
      },
    };
    run((i, m) => encoder.hiddenStates(i, m, { adapters: recorder }));
    const layer = (i: number) =>
      [
        'attention.self.query:32',
        'attention.self.key:32',
        'attention.self.value:32',
        'attention.output.dense:32',
        'intermediate.dense:32',
        'output.dense:64',
      ].map((s) => `bert.encoder.layer.${i}.${s}`);
    expect(seen).toEqual([...layer(0), ...layer(1)]);
    encoder.dispose();
  });

  it('gradients of A and B through the encoder match central finite differences', async () => {
    await initBackend('cpu');
    const encoder = await loadEncoder(dir);
    const adapter = getMethod('lora').create(asAdaptable(encoder), settingsFor(['query', 'value', 'intermediate.dense']), 3);
    randomizeB(adapter);
    const ids = tf.tensor2d(reference.input_ids, undefined, 'int32');
    const mask = tf.tensor2d(reference.attention_mask, undefined, 'float32');
    const V = config.vocabSize;
    // Masked-LM cross-entropy of every real token against itself, a smooth scalar of all outputs.
    const targets = tf.oneHot(tf.reshape(ids, [-1]), V);
    const weights = tf.reshape(mask, [-1]);
    const loss = () =>
      tf.tidy(() => {
        const logits = tf.reshape(encoder.mlmLogits(ids, mask, { adapters: adapter, training: true }), [-1, V]);
        return tf.div(tf.sum(tf.mul(tf.sum(tf.mul(tf.neg(tf.logSoftmax(logits)), targets), 1), weights)), tf.sum(weights)) as tf.Scalar;
      });
    // A and B of query, value and intermediate.dense in layer 0
    expect(
      checkGradients(
        loss,
        adapter.trainable().filter((t) => t.name.includes('layer.0')),
      ),
    ).toBe(6);
    tf.dispose([ids, mask, targets, weights]);
    adapter.dispose();
    encoder.dispose();
  });
});
