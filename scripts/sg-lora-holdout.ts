// SG-LoRA leave-one-task-out on the embedded model and the sample data's ten tasks: one LoRA expert per
// task (trained on 80% of its rows), each described in a sentence; then, for every task, an adapter
// generated from its description by the bank of the other nine (it never sees the task's rows), scored on
// the task's held-out 20% next to the base model, the other experts (the best of them is what picking one
// expert by hand could reach at most) and the task's own expert (the oracle). Prints a markdown table of
// completion loss (mean NLL per completion token, nats).
//   node --import tsx scripts/sg-lora-holdout.ts [--steps 60] [--backend wasm] [--generator semantic-merge|cvae] [--top-k 3]
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { BackendChoiceSchema, RunConfigSchema } from '../src-shared/config.ts';
import { GenerateAdapterJobSchema } from '../src-shared/worker-protocol.ts';
import type { WorkerToMain } from '../src-shared/worker-protocol.ts';
import { initBackend } from '../src-worker/backend.ts';
import { loadAdapter } from '../src-worker/eval/job.ts';
import { pairLogLikelihood } from '../src-worker/eval/score.ts';
import { loadCausalLM } from '../src-worker/formats/model-folder.ts';
import { loadTokenizer } from '../src-worker/formats/tokenizer.ts';
import { generateAdapter } from '../src-worker/sg-lora/generate.ts';
import { runTraining } from '../src-worker/train/loop.ts';
import { buildSampleRows, toJsonl, type SampleRow, type TaskName } from './make-sample-data.ts';

const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '60' },
    backend: { type: 'string', default: 'wasm' },
    generator: { type: 'string', default: 'semantic-merge' },
    'top-k': { type: 'string', default: '3' },
  },
});
const steps = Number.parseInt(values.steps!, 10);
const backend = BackendChoiceSchema.parse(values.backend);
const generator = values.generator === 'cvae' ? 'cvae' : 'semantic-merge';
const topK = Number.parseInt(values['top-k']!, 10);

const DESCRIPTIONS: Record<TaskName, string> = {
  antonym: 'Give the word that means the opposite of the given word.',
  arithmetic: 'Add or subtract two small numbers written as words and answer with a number word.',
  capital: 'Name the capital city of the given country.',
  category: 'Say which group or kind of thing the given item belongs to.',
  comparative: 'Give the comparative form of an adjective, such as taller or more beautiful.',
  larger_number: 'Say which of two numbers is the larger one.',
  past_tense: 'Give the past tense of the given verb.',
  plural: 'Give the plural form of the given noun.',
  sentiment: 'Read a short review and say whether it is positive or negative.',
  spelling: 'Spell the given word letter by letter with dashes.',
};

const modelDir = path.join(import.meta.dirname, '..', 'resources', 'models', 'default');
const root = fs.mkdtempSync(path.join(tmpdir(), 'lwb-sg-lora-'));
const byTask = new Map<TaskName, { train: SampleRow[]; test: SampleRow[] }>();
buildSampleRows().forEach((row, i) => {
  const split = byTask.get(row.task) ?? { train: [], test: [] };
  (i % 5 === 0 ? split.test : split.train).push(row);
  byTask.set(row.task, split);
});
const tasks = [...byTask.keys()].sort();

const t0 = Date.now();
const expertDirs = new Map<TaskName, string>();
for (const task of tasks) {
  const runDir = path.join(root, `expert-${task}`);
  const datasetPath = path.join(root, `${task}.jsonl`);
  fs.writeFileSync(datasetPath, toJsonl(byTask.get(task)!.train));
  const config = RunConfigSchema.parse({
    method: 'lora',
    model: modelDir,
    dataset: datasetPath,
    backend,
    training: { maxSteps: steps, evalEvery: steps, checkpointEvery: steps, seed: 1 },
  });
  const messages: WorkerToMain[] = [];
  await runTraining(
    { type: 'train', runId: `expert-${task}`, config, modelDir, datasetPath, runDir, resumeFrom: null },
    { emit: (m) => messages.push(m), shouldStop: () => false },
  );
  const failed = messages.find((m) => m.type === 'failed');
  if (failed) throw new Error(`expert ${task}: ${failed.error.message}`);
  expertDirs.set(task, path.join(runDir, 'adapter'));
  process.stderr.write(`expert ${task}: ${byTask.get(task)!.train.length} rows, ${steps} steps\n`);
}

const generated = new Map<TaskName, { dir: string; weights: string }>();
for (const task of tasks) {
  const others = tasks.filter((t) => t !== task);
  const outDir = path.join(root, `generated-${task}`);
  const job = GenerateAdapterJobSchema.parse({
    type: 'generate-adapter',
    modelDir,
    outDir,
    runId: `sg-${task}`,
    experts: others.map((t) => ({ adapterId: t, name: t, dir: expertDirs.get(t)!, description: DESCRIPTIONS[t] })),
    request: { name: `sg-${task}`, description: DESCRIPTIONS[task], generator, topK, backend },
  });
  const report = await generateAdapter(job);
  const top = report.experts.filter((e) => e.weight > 0).sort((a, b) => b.weight - a.weight);
  generated.set(task, { dir: outDir, weights: top.map((e) => `${e.adapterId} ${e.weight.toFixed(2)}`).join(', ') });
}

await initBackend(backend);
const model = await loadCausalLM(modelDir);
const tokenizer = await loadTokenizer(modelDir);
/** Mean negative log-likelihood per completion token of the task's held-out rows, with the adapter in `dir` (null: base). */
async function completionLoss(task: TaskName, dir: string | null): Promise<number> {
  const adapter = dir ? await loadAdapter(model, dir) : null;
  try {
    const pairs = byTask.get(task)!.test.map((r) => ({ context: r.prompt, continuation: r.completion }));
    const scores = await pairLogLikelihood(model, tokenizer, pairs, { adapters: adapter?.adapter ?? null, batchSize: 16 });
    return -scores.reduce((s, x) => s + x.logLikelihood, 0) / scores.reduce((s, x) => s + x.tokens, 0);
  } finally {
    adapter?.adapter.dispose();
  }
}

const f = (x: number) => x.toFixed(3);
console.log(
  `SG-LoRA (${generator}, top ${topK}) leave-one-task-out: default model, sample data, ${steps}-step LoRA experts (r 8), ${backend}. Completion loss on each task's held-out 20% (nats per token; lower is better).\n`,
);
console.log(
  '| held-out task | rows | base | SG-LoRA from the other 9 | its top experts (weight) | mean of the other 9 experts | best other expert | own expert (oracle) |',
);
console.log('|---|---|---|---|---|---|---|---|');
const totals = { base: 0, generated: 0, mean: 0, best: 0, own: 0 };
for (const task of tasks) {
  const base = await completionLoss(task, null);
  const sg = await completionLoss(task, generated.get(task)!.dir);
  const others: [TaskName, number][] = [];
  for (const t of tasks) if (t !== task) others.push([t, await completionLoss(task, expertDirs.get(t)!)]);
  const mean = others.reduce((s, [, l]) => s + l, 0) / others.length;
  const [bestTask, best] = others.reduce((a, b) => (b[1] < a[1] ? b : a));
  const own = await completionLoss(task, expertDirs.get(task)!);
  Object.entries({ base, generated: sg, mean, best, own }).forEach(([k, v]) => (totals[k as keyof typeof totals] += v / tasks.length));
  console.log(
    `| ${task} | ${byTask.get(task)!.test.length} | ${f(base)} | ${f(sg)} | ${generated.get(task)!.weights} | ${f(mean)} | ${f(best)} (${bestTask}) | ${f(own)} |`,
  );
}
console.log(`| **mean over tasks** | | ${f(totals.base)} | ${f(totals.generated)} | | ${f(totals.mean)} | ${f(totals.best)} | ${f(totals.own)} |`);
console.log(`\n${((Date.now() - t0) / 1000).toFixed(0)} s in all; working folder ${root}`);
model.dispose();
