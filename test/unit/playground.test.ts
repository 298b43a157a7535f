// The Playground's generate job (src-worker/playground.ts) on gpt2-tiny: a fresh LoRA adapter (B = 0)
// generates exactly what the base model does, a trained-looking one (B != 0) does not; one seed
// reproduces a sample; the chat template is applied when asked and its absence is an error.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunConfigSchema, type RunConfigOf } from '../../src-shared/config.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { SamplingSettingsSchema } from '../../src-shared/models.ts';
import type { GenerateJob } from '../../src-shared/worker-protocol.ts';
import { initBackend } from '../../src-worker/backend.ts';
import { writeAdapter as saveAdapter } from '../../src-worker/export/write-adapter.ts';
import { loadCausalLM } from '../../src-worker/formats/model-folder.ts';
import { loadTokenizer } from '../../src-worker/formats/tokenizer.ts';
import { getMethod } from '../../src-worker/methods/index.ts';
import { promptIds, runGenerateJob } from '../../src-worker/playground.ts';
import { mulberry32 } from '../../src-worker/rng.ts';
import { tf } from '../../src-worker/tf.ts';

const modelDir = path.join(import.meta.dirname, '..', 'fixtures', 'gpt2-tiny');
let root: string;
let zeroAdapter: string;
let trainedAdapter: string;

/** A workbench adapter folder for gpt2-tiny; `scaleB` > 0 fills lora_B with noise of that size (as training would move it). */
async function writeAdapter(dir: string, scaleB: number): Promise<string> {
  const config = <RunConfigOf<'lora'>>(
    RunConfigSchema.parse({ model: modelDir, backend: 'cpu', lora: { r: 4, alpha: 8, dropout: 0, targetModules: ['c_attn', 'c_proj'] } })
  );
  const model = await loadCausalLM(modelDir);
  const method = getMethod('lora');
  const adapter = method.create(model, method.parseSettings(config.lora), 0);
  try {
    if (scaleB > 0) {
      const random = mulberry32(11);
      const state = adapter.stateDict();
      const changed = new Map<string, tf.Tensor>();
      for (const [name, t] of state) {
        changed.set(
          name,
          name.includes('lora_B')
            ? tf.tensor(
                Float32Array.from({ length: t.size }, () => (random.next() - 0.5) * 2 * scaleB),
                t.shape,
              )
            : t,
        );
      }
      adapter.loadStateDict(new Map([...changed].map(([name, t]) => [name, { shape: [...t.shape], data: t.dataSync() as Float32Array }])));
      tf.dispose([...state.values(), ...changed.values()]);
    }
    await saveAdapter(adapter, dir, {
      baseModelNameOrPath: modelDir,
      sidecar: {
        format: 'lora-workbench-adapter',
        version: 1,
        method: 'lora',
        runId: 'test',
        step: 1,
        trainableParams: adapter.trainableParamCount(),
        config,
        backend: null,
        baseModel: { path: modelDir, fingerprint: null },
        createdAt: new Date(0).toISOString(),
      },
    });
  } finally {
    adapter.dispose();
    model.dispose();
  }
  return dir;
}

function job(overrides: Partial<GenerateJob> = {}): GenerateJob {
  return {
    type: 'generate',
    modelDir,
    adapterDir: null,
    prompt: 'the cat',
    useChatTemplate: false,
    sampling: SamplingSettingsSchema.parse({ maxNewTokens: 12 }),
    backend: 'cpu',
    ...overrides,
  };
}

beforeAll(async () => {
  await initBackend('cpu');
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-playground-'));
  zeroAdapter = await writeAdapter(path.join(root, 'zero'), 0);
  trainedAdapter = await writeAdapter(path.join(root, 'trained'), 0.5);
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('runGenerateJob', () => {
  it('generates from the base model alone, with tokens/s and the backend', async () => {
    const result = await runGenerateJob(job());
    expect(result.adapter).toBeNull();
    expect(result.renderedPrompt).toBe('the cat');
    expect(result.base.tokens).toBeGreaterThan(0);
    expect(result.base.tokens).toBeLessThanOrEqual(12);
    expect(result.base.tokensPerSecond).toBeGreaterThan(0);
    expect(result.backend.name).toBe('cpu');
    expect(tf.memory().numTensors).toBe(0);
  });

  it('an adapter with B = 0 changes nothing; one with B != 0 changes the output', async () => {
    const zero = await runGenerateJob(job({ adapterDir: zeroAdapter }));
    expect(zero.adapter!.text).toBe(zero.base.text);
    const trained = await runGenerateJob(job({ adapterDir: trainedAdapter }));
    expect(trained.base.text).toBe(zero.base.text);
    expect(trained.adapter!.text).not.toBe(trained.base.text);
  });

  it('one seed reproduces a sample, another seed gives another', async () => {
    const sampling = (seed: number) => SamplingSettingsSchema.parse({ maxNewTokens: 16, temperature: 1.5, seed });
    const first = await runGenerateJob(job({ adapterDir: trainedAdapter, sampling: sampling(5) }));
    const again = await runGenerateJob(job({ adapterDir: trainedAdapter, sampling: sampling(5) }));
    expect(again.base.text).toBe(first.base.text);
    expect(again.adapter!.text).toBe(first.adapter!.text);
    const other = await runGenerateJob(job({ adapterDir: trainedAdapter, sampling: sampling(6) }));
    expect(other.base.text).not.toBe(first.base.text);
  });

  it('renders the chat template when asked, and says so when the folder has none', async () => {
    const chatDir = path.join(root, 'chat-model');
    fs.mkdirSync(chatDir);
    for (const name of fs.readdirSync(modelDir))
      if (fs.statSync(path.join(modelDir, name)).isFile()) fs.copyFileSync(path.join(modelDir, name), path.join(chatDir, name));
    const tokenizerConfig = JSON.parse(fs.readFileSync(path.join(chatDir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    const template = '{% for m in messages %}Q: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}A:{% endif %}';
    fs.writeFileSync(path.join(chatDir, 'tokenizer_config.json'), JSON.stringify({ ...tokenizerConfig, chat_template: template }));
    const result = await runGenerateJob(job({ modelDir: chatDir, useChatTemplate: true }));
    expect(result.renderedPrompt).toBe('Q: the cat\nA:');

    const error = await runGenerateJob(job({ useChatTemplate: true })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WorkbenchError);
    expect((error as WorkbenchError).message).toMatch(/has no chat template/);
  });

  it('keeps the end of a prompt longer than the model positions', async () => {
    const logs: string[] = [];
    const result = await runGenerateJob(
      job({ prompt: 'the cat sat on the mat '.repeat(20), sampling: SamplingSettingsSchema.parse({ maxNewTokens: 4 }) }),
      (m) => logs.push(m),
    );
    // gpt2-tiny has 32 positions: 31 prompt tokens leave room for one new token.
    expect(result.base.tokens).toBe(1);
    expect(result.base.stoppedBy).toBe('max_positions');
    expect(logs.join('\n')).toMatch(/only its last 31 tokens are used/);
  });
});

describe('promptIds', () => {
  it('adds BOS only when the tokenizer uses one and the text does not start with it', async () => {
    const tokenizer = await loadTokenizer(modelDir);
    const plain = { ...tokenizer, encode: (t: string) => tokenizer.encode(t), decode: (ids: number[]) => tokenizer.decode(ids) };
    expect(promptIds({ ...plain, bosTokenId: null }, 'the cat')).toEqual(tokenizer.encode('the cat'));
    expect(promptIds({ ...plain, bosTokenId: 7 }, 'the cat')).toEqual([7, ...tokenizer.encode('the cat')]);
    const first = tokenizer.encode('the')[0]!;
    expect(promptIds({ ...plain, bosTokenId: first }, 'the cat')).toEqual(tokenizer.encode('the cat'));
  });
});
