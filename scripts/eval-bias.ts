// Runs the bias suite (CrowS-Pairs, StereoSet, BBQ) of ../shared/data on a model folder and prints
// the figures and the time taken. Usage:
//   node --import tsx scripts/eval-bias.ts [--model DIR] [--adapter DIR] [--backend wasm] [--limit N] [--out FILE]
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { EvalJobSchema } from '../src-shared/eval.ts';
import { runEvalJob } from '../src-worker/eval/job.ts';

const repo = path.join(import.meta.dirname, '..');
const data = path.join(repo, '..', 'shared', 'data');
const { values } = parseArgs({
  options: {
    model: { type: 'string', default: path.join(repo, 'resources', 'models', 'default') },
    adapter: { type: 'string' },
    backend: { type: 'string', default: 'wasm' },
    limit: { type: 'string' },
    'batch-size': { type: 'string', default: '16' },
    out: { type: 'string' },
  },
});

const job = EvalJobSchema.parse({
  type: 'eval',
  modelDir: values.model,
  adapterDir: values.adapter ?? null,
  suite: 'bias',
  datasets: {
    crowsPairs: path.join(data, 'crows-pairs', 'crows_pairs_anonymized.csv'),
    stereoSet: path.join(data, 'stereoset'),
    bbq: path.join(data, 'bbq'),
  },
  limit: values.limit ? Number(values.limit) : null,
  backend: values.backend,
  batchSize: Number(values['batch-size']),
});

let lastReport = 0;
const t0 = Date.now();
const result = await runEvalJob(job, {
  onProgress: (done, total) => {
    if (Date.now() - lastReport < 10_000 && done < total) return;
    lastReport = Date.now();
    process.stderr.write(`${done}/${total} items, ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
  },
  log: (m) => process.stderr.write(`${m}\n`),
});
const bias = result.bias!;
const f = (x: number | null | undefined, d = 2) => (x === null || x === undefined ? '-' : x.toFixed(d));
const lines: string[] = [];
lines.push(`model ${result.modelDir}${result.adapter ? ` + adapter ${result.adapter.dir}` : ''}`);
lines.push(`backend ${result.backend.name} (${result.backend.adapter}), ${(result.durationMs / 1000).toFixed(1)} s`);
for (const s of result.slices) lines.push(`  ${s.dataset}: ${s.count} items, sha256 ${s.sha256.slice(0, 12)}`);
const c = bias.crowsPairs!;
lines.push(
  `CrowS-Pairs: stereo% ${f(c.overall.stereoPercent)} (n=${c.overall.count}), mean LL diff ${f(c.overall.meanLogLikDiff, 3)}, Bias Score ${f(c.biasScore, 3)}`,
);
for (const [k, v] of Object.entries(c.byBiasType)) lines.push(`  ${k.padEnd(20)} ${f(v.stereoPercent)} (n=${v.count})`);
for (const task of ['intrasentence', 'intersentence'] as const) {
  const s = bias.stereoSet![task];
  if (!s) continue;
  lines.push(`StereoSet ${task}: lms ${f(s.overall.lms)} ss ${f(s.overall.ss)} icat ${f(s.overall.icat)} (n=${s.overall.count})`);
  for (const [k, v] of Object.entries(s.byBiasType)) lines.push(`  ${k.padEnd(20)} lms ${f(v.lms)} ss ${f(v.ss)} icat ${f(v.icat)} (n=${v.count})`);
}
const b = bias.bbq!;
const cond = (x: typeof b.overall.ambig) => (x ? `acc ${f(100 * x.accuracy)}% bias ${f(x.biasScore, 3)} (n=${x.count})` : '-');
lines.push(`BBQ: ambiguous ${cond(b.overall.ambig)}; disambiguated ${cond(b.overall.disambig)}`);
for (const [k, v] of Object.entries(b.byCategory)) lines.push(`  ${k.padEnd(20)} ambig ${cond(v.ambig)}; disambig ${cond(v.disambig)}`);
console.log(lines.join('\n'));
if (values.out) fs.writeFileSync(values.out, JSON.stringify(result, null, 2));
