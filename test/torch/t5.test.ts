// A T5 model (encoder-decoder, AutoModelForSeq2SeqLM; test/fixtures/t5-tiny, made by
// engine-torch/scripts/make_t5_fixture.py) trains with LoRA on the pytorch engine, and PEFT itself loads
// the adapter it wrote and reproduces the trained model's logits (the tfjs engine has no T5).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveEnginePython } from '../../src-main/engines/pytorch-engine.ts';
import { failureOf, fixture, makeJob, root, runPytorch, toyDataset } from './engine-run.ts';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-torch-t5-'));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe('T5 on the pytorch engine', () => {
  it('trains with LoRA and writes an adapter PEFT loads with the same logits', async () => {
    const runDir = path.join(work, 'run');
    const job = makeJob(runDir, fixture('t5-tiny'), toyDataset(work), {
      engine: 'pytorch',
      method: 'lora',
      lora: { r: 4, alpha: 8, dropout: 0.1, targetModules: ['q', 'v'] },
      training: { learningRate: 2e-2, batchSize: 4, maxSteps: 12, maxSeqLen: 16, warmupSteps: 1, evalEvery: 6, evalBatches: 1, checkpointEvery: 6, seed: 4 },
    });
    const run = await runPytorch(job);
    expect(failureOf(run)).toBeNull();
    expect(run.losses.size).toBe(12);
    expect(run.losses.get(12)!).toBeLessThan(run.losses.get(1)! - 0.5);
    const config = JSON.parse(fs.readFileSync(path.join(runDir, 'adapter', 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    expect(config).toMatchObject({ peft_type: 'LORA', task_type: 'SEQ_2_SEQ_LM', target_modules: ['q', 'v'] });
    const verified = spawnSync(
      resolveEnginePython(null, root),
      ['-m', 'workbench_torch', 'verify', '--adapter', path.join(runDir, 'adapter'), '--model', fixture('t5-tiny')],
      { cwd: path.join(root, 'engine-torch'), encoding: 'utf8' },
    );
    expect(verified.status, verified.stderr.slice(-2000)).toBe(0);
    const report = JSON.parse(verified.stdout) as { maxAbsDiffToTrained: number; maxAbsDiffToBase: number; passed: boolean };
    expect(report.maxAbsDiffToTrained).toBeLessThanOrEqual(1e-5);
    expect(report.maxAbsDiffToBase).toBeGreaterThan(1e-4);
  });
});
