// The memory estimate of a pytorch run (src-worker/inspect-model.ts torchActivationBytes) against what
// one LoRA step of the engine really holds beyond its parameters, measured in torch itself
// (engine-torch/scripts/measure_activation_peak.py, CPU, f32): within 1.3x either way, as the tfjs
// estimate is held to tf.profile's peak (test/unit/inspect-model.test.ts).
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveEnginePython } from '../../src-main/engines/pytorch-engine.ts';
import { inspectModel } from '../../src-worker/inspect-model.ts';
import { fixture, root } from './engine-run.ts';

const run = { batchSize: 8, maxSeqLen: 32, r: 8 };

function measured(family: string, targets: string[]): { savedBytes: number; peakBytes: number } {
  const script = path.join(root, 'engine-torch', 'scripts', 'measure_activation_peak.py');
  const out = spawnSync(
    resolveEnginePython(null, root),
    [script, fixture(family), String(run.batchSize), String(run.maxSeqLen), String(run.r), targets.join(',')],
    {
      encoding: 'utf8',
      env: { ...process.env, OMP_NUM_THREADS: '1' },
    },
  );
  expect(out.status, out.stderr).toBe(0);
  return JSON.parse(out.stdout.trim().split('\n').at(-1)!) as { savedBytes: number; peakBytes: number };
}

describe('the pytorch memory estimate against a measured training step', () => {
  // The families' default targets, as the estimate assumes them: GPT-2's c_proj names both attn.c_proj and mlp.c_proj.
  for (const [family, targets] of [
    ['gpt2-tiny', ['c_attn', 'c_proj']],
    ['llama-tiny', ['q_proj', 'v_proj']],
  ] as [string, string[]][]) {
    it(`${family}: activations within 1.3x of the step's peak`, async () => {
      const memory = (await inspectModel({ modelDir: fixture(family), ...run, engine: 'pytorch', accelerator: 'cpu' })).memory;
      const { savedBytes, peakBytes } = measured(family, targets);
      console.log(`${family}: estimate ${memory.activationsBytes} B, measured peak ${peakBytes} B (saved for backward ${savedBytes} B)`);
      expect(memory.precision).toBe('f32');
      expect(savedBytes).toBeLessThan(peakBytes);
      expect(memory.activationsBytes / peakBytes).toBeGreaterThan(1 / 1.3);
      expect(memory.activationsBytes / peakBytes).toBeLessThan(1.3);
    });
  }
});
