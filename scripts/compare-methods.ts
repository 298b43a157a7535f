// Side by side: every registered method trained on the embedded sample data with the embedded model,
// same seed, backend and training settings, each through the real training loop (runTraining), one
// after another in this process. Prints a markdown table: final validation loss, trainable parameters
// as a share of the base model (the papers' overhead figure), and step times relative to LoRA.
// On a shared machine step times swing with the load: --repeat k runs the whole sequence k times in
// alternating order and pools the step times, and the ratio uses each method's fastest steps (its
// 10th percentile), the figure least disturbed by other processes.
//   node --import tsx scripts/compare-methods.ts [--steps 60] [--backend wasm] [--seed 42] [--repeat 1] [--methods lora,houlsby]
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { BackendChoiceSchema, RunConfigSchema } from '../src-shared/config.ts';
import type { MetricPoint } from '../src-shared/runs.ts';
import type { WorkerToMain } from '../src-shared/worker-protocol.ts';
import { methodIds } from '../src-worker/methods/index.ts';
import { runTraining } from '../src-worker/train/loop.ts';

const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '60' },
    backend: { type: 'string', default: 'wasm' },
    seed: { type: 'string', default: '42' },
    methods: { type: 'string' },
    repeat: { type: 'string', default: '1' },
  },
});
const steps = Number.parseInt(values.steps!, 10);
const seed = Number.parseInt(values.seed!, 10);
const backend = BackendChoiceSchema.parse(values.backend);
const repeat = Number.parseInt(values.repeat!, 10);
const methods = values.methods ? values.methods.split(',').map((m) => m.trim()) : methodIds();

const resources = path.join(import.meta.dirname, '..', 'resources');
const modelDir = path.join(resources, 'models', 'default');
const datasetPath = path.join(resources, 'datasets', 'sample', 'train.jsonl');
const root = fs.mkdtempSync(path.join(tmpdir(), 'lwb-compare-'));

interface Row {
  method: string;
  valLoss: number;
  trainable: number;
  base: number;
  stepTimes: number[];
  error?: string;
}

const quantile = (xs: number[], q: number) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
};

async function run(method: string, round: number): Promise<Row> {
  const messages: WorkerToMain[] = [];
  // Every method at its defaults and the default training settings; the same seed and data order for all.
  const config = RunConfigSchema.parse({
    method,
    model: modelDir,
    dataset: datasetPath,
    backend,
    training: { maxSteps: steps, seed, evalEvery: steps, checkpointEvery: steps },
  });
  const began = Date.now();
  await runTraining(
    { type: 'train', runId: method, config, modelDir, datasetPath, runDir: path.join(root, `${method}-${round}`), resumeFrom: null },
    { emit: (m) => messages.push(m), shouldStop: () => false },
  );
  const points = (name: string): MetricPoint[] => messages.flatMap((m) => (m.type === 'metrics' ? m.points.filter((p) => p.name === name) : []));
  const failed = messages.find((m) => m.type === 'failed');
  const started = messages.find((m) => m.type === 'started');
  const baseLog = messages.find((m) => m.type === 'log' && m.message.startsWith('Trainable parameters:'));
  const base = baseLog?.type === 'log' ? Number((/base model's ([\d,]+)/.exec(baseLog.message)?.[1] ?? 'NaN').replaceAll(',', '')) : NaN;
  // The first steps compile kernels and warm caches: they are left out of the mean.
  const stepTimes = points('step_time_ms')
    .filter((p) => p.step > 5)
    .map((p) => p.value);
  process.stderr.write(
    `${method}: ${failed?.type === 'failed' ? `failed: ${failed.error.message}` : 'done'} in ${((Date.now() - began) / 1000).toFixed(1)} s\n`,
  );
  return {
    method,
    valLoss: points('val/loss').at(-1)?.value ?? NaN,
    trainable: started?.type === 'started' ? started.trainableParams : NaN,
    base,
    stepTimes,
    ...(failed?.type === 'failed' ? { error: failed.error.message } : {}),
  };
}

const rows = new Map<string, Row>();
try {
  for (let round = 0; round < repeat; round++) {
    for (const method of round % 2 ? [...methods].reverse() : methods) {
      const row = await run(method, round);
      const seen = rows.get(method);
      if (!seen) rows.set(method, row);
      else {
        // Same seed, same data order: the loss must come out the same every round.
        if (seen.valLoss !== row.valLoss) process.stderr.write(`${method}: val loss ${row.valLoss} in round ${round + 1}, ${seen.valLoss} before\n`);
        seen.stepTimes.push(...row.stepTimes);
      }
    }
  }
} finally {
  fs.rmSync(root, { recursive: true, force: true });
}
const lora = rows.get('lora');
const fast = (r: Row) => quantile(r.stepTimes, 0.1);
const fmt = (x: number, digits: number) => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');
console.log(
  `Default model, sample data, ${backend}, seed ${seed}, ${steps} steps (${repeat} round${repeat > 1 ? 's' : ''}), default settings of every method.\n`,
);
console.log('| method | final val loss | trainable params | trainable % of base | step time median / p10 (ms) | step time vs LoRA (p10) |');
console.log('|---|---|---|---|---|---|');
for (const r of rows.values()) {
  if (r.error) {
    console.log(`| ${r.method} | failed: ${r.error.replaceAll('|', '/')} | | | | |`);
    continue;
  }
  const share = (100 * r.trainable) / r.base;
  console.log(
    `| ${r.method} | ${fmt(r.valLoss, 4)} | ${r.trainable.toLocaleString('en-US')} | ${share >= 1 ? fmt(share, 1) : fmt(share, 3)}% | ${fmt(quantile(r.stepTimes, 0.5), 0)} / ${fmt(fast(r), 0)} | ${lora ? `${fmt(fast(r) / fast(lora), 2)}x` : 'n/a'} |`,
  );
}
