// The pytorch engine's data plan (src-worker/data/data-plan.ts) carries prompt tuning's init-text tokens,
// tokenized by the tfjs engine's tokenizer as its fit hook reads them, only when a run starts from a text.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RunConfigSchema, type RunConfigInput } from '../../src-shared/config.ts';
import { buildDataPlan, DataPlanSchema } from '../../src-worker/data/data-plan.ts';
import { loadTokenizer } from '../../src-worker/formats/tokenizer.ts';

const modelDir = path.join(import.meta.dirname, '..', 'fixtures', 'gpt2-tiny');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-data-plan-'));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));
const datasetPath = path.join(work, 'toy.jsonl');
fs.writeFileSync(datasetPath, Array.from({ length: 8 }, (_, i) => JSON.stringify({ prompt: `The cat ${i} says`, completion: ' meow' })).join('\n'));

const planFor = (input: RunConfigInput) =>
  buildDataPlan({
    config: RunConfigSchema.parse({ ...input, model: modelDir, dataset: datasetPath, training: { maxSteps: 2, batchSize: 2 } }),
    modelDir,
    datasetPath,
  });

describe('the data plan of a prompt-tuning run', () => {
  it("holds the init text's tokens for init text, and nothing for random init or other methods", async () => {
    const initText = 'Animal sounds: the cat says';
    const text = await planFor({ method: 'prompt-tuning', promptTuning: { init: 'text', initText } } as RunConfigInput);
    const tokenizer = await loadTokenizer(modelDir);
    expect(text.promptTuningInitIds).toEqual(tokenizer.encode(initText));
    expect(text.promptTuningInitIds!.length).toBeGreaterThan(3);
    expect(DataPlanSchema.parse(text)).toEqual(text);
    expect((await planFor({ method: 'prompt-tuning' } as RunConfigInput)).promptTuningInitIds).toBeUndefined();
    expect((await planFor({ method: 'lora' } as RunConfigInput)).promptTuningInitIds).toBeUndefined();
  });
});
