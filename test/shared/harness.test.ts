// lm-evaluation-harness against the workbench on the embedded default model, as test/interop/harness.test.ts,
// on evenly spread 200-item slices of the real CrowS-Pairs and QQP files in ../shared/data (the app on wasm,
// XNNPACK: the plain-JavaScript cpu backend takes minutes for 400 texts on a busy machine). Needs the
// Python environment of npm run test:interop (LORA_WORKBENCH_PYTHON or the repo's .venv).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareWithHarness, describeComparison, type HarnessComparison } from '../interop/harness.ts';

const DATA = path.join(import.meta.dirname, '..', '..', '..', 'shared', 'data');
const LIMIT = 200;

let work: string;
let comparison: HarnessComparison;
beforeAll(async () => {
  if (!fs.existsSync(DATA)) throw new Error(`The shared datasets are not at ${DATA}; npm run test:shared needs them there.`);
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-shared-harness-'));
  comparison = await compareWithHarness(
    work,
    {
      crowsPairs: path.join(DATA, 'crows-pairs', 'crows_pairs_anonymized.csv'),
      qqp: path.join(DATA, 'qqp', 'qqp_glue_pretrain_9999.jsonl'),
    },
    LIMIT,
    'wasm',
  );
  console.log(describeComparison(comparison));
}, 1_800_000);
afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe('lm-evaluation-harness on the real CrowS-Pairs and QQP', () => {
  it('agrees with the workbench within one item', () => {
    expect(comparison.items).toEqual({ crows: LIMIT, qqp: LIMIT });
    expect(comparison.disagreements.crows).toBeLessThanOrEqual(1);
    expect(comparison.disagreements.qqp).toBeLessThanOrEqual(1);
    expect(Math.abs(comparison.app.stereoPercent - comparison.harness.stereoPercent)).toBeLessThanOrEqual(100 / LIMIT + 1e-9);
    expect(Math.abs(comparison.app.qqpAccuracy - comparison.harness.qqpAccuracy)).toBeLessThanOrEqual(1 / LIMIT + 1e-9);
    expect(comparison.app.meanAbsLogLikDiff).toBeCloseTo(comparison.harness.likelihoodDiff, 3);
  });
});
