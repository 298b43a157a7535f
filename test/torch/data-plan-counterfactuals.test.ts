// The pytorch engine cannot swap demographic terms itself (it has no tokenizer of the workbench's): the
// data plan of a bias-aware run with the counterfactual reading carries each prompt's counterfactual
// ids, computed by the tfjs engine's own function, and other runs' plans carry none.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RunConfigSchema, type RunConfigInput } from '../../src-shared/config.ts';
import { buildDataPlan } from '../../src-worker/data/data-plan.ts';
import { loadTokenizer } from '../../src-worker/formats/tokenizer.ts';
import { counterfactualIds } from '../../src-worker/methods/bias-aware.ts';
import { fixture, toyDataset } from './engine-run.ts';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-torch-plan-'));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));
const dataset = toyDataset(work);
const model = fixture('gpt2-tiny');
const training = { batchSize: 4, maxSteps: 2, maxSeqLen: 32, seed: 7 };
/** gpt2-tiny's n_positions: counterfactuals are cut there. */
const positions = 32;

const planOf = (input: RunConfigInput) =>
  buildDataPlan({ config: RunConfigSchema.parse({ ...input, model, dataset, engine: 'pytorch', training }), modelDir: model, datasetPath: dataset });

describe('the data plan of a bias-aware run', () => {
  it("carries each prompt's counterfactual: its demographic terms swapped, null where it has none", async () => {
    const plan = await planOf({ method: 'bias-aware', biasAware: { reading: 'counterfactual' } });
    const tokenizer = await loadTokenizer(model);
    const decoded = plan.examples.map((e) => [tokenizer.decode(e.prompt), e.counterfactual ? tokenizer.decode(e.counterfactual) : null]);
    // "He said the cow says" and "She said the owl says" swap; the cat, the dog and the bird have nothing to swap.
    expect(decoded).toContainEqual(['He said the cow says', 'She said the cow says']);
    expect(decoded).toContainEqual(['She said the owl says', 'He said the owl says']);
    expect(decoded).toContainEqual(['The cat says', null]);
    for (const e of plan.examples) expect(e.counterfactual).toEqual(counterfactualIds(tokenizer, e.prompt, training.seed, positions));
  });

  it('carries none for the adversarial reading or another method', async () => {
    for (const input of [{ method: 'bias-aware', biasAware: { reading: 'adversarial' } }, { method: 'lora' }] as RunConfigInput[]) {
      const plan = await planOf(input);
      expect(plan.examples.every((e) => !('counterfactual' in e))).toBe(true);
    }
  });
});
