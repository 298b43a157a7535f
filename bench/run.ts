// `npm run bench`: the LoRA training step of a GPT-2-shaped model (the embedded default model's shape) on
// every backend that loads here, next to the same step in PyTorch on the same CPU, as ratios measured in
// one run. Appends the table to bench/RESULTS.md with the date and the machine.
import { execFile } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { backendNames } from '../src-shared/config.ts';

const run = promisify(execFile);
const here = import.meta.dirname;
const shape = { 'n-embd': 128, 'n-layer': 4, 'n-head': 4, vocab: 4096, seq: 64, batch: 8, rank: 8 };
const shapeArgs = Object.entries(shape).flatMap(([k, v]) => [`--${k}`, String(v)]);
const threads = cpus().length;

interface StepFigures {
  label: string;
  step_ms: number;
  tokens_per_s: number;
  peak_rss_mb: number;
  note: string;
}

async function lastJsonLine(command: string, args: string[]): Promise<Record<string, unknown>> {
  const { stdout } = await run(command, args, { maxBuffer: 16 << 20, timeout: 15 * 60_000 });
  const line = stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (!line) throw new Error(`${command} printed no result`);
  return JSON.parse(line) as Record<string, unknown>;
}

const results: StepFigures[] = [];
const skipped: string[] = [];

let torch: StepFigures | null = null;
try {
  const r = await lastJsonLine('/usr/bin/python3', [join(here, 'torch_lora_step.py'), ...shapeArgs, '--steps', '10', '--threads', String(threads)]);
  torch = { label: 'PyTorch (reference)', step_ms: Number(r.step_ms), tokens_per_s: Number(r.tokens_per_s), peak_rss_mb: Number(r.peak_rss_mb), note: `torch ${r.torch_version}, ${r.threads} threads, ${r.blas}` };
} catch (error) {
  skipped.push(`PyTorch reference: ${(error as Error).message.split('\n')[0]} (apt-get install python3-torch libopenblas0-pthread)`);
}

for (const backend of [...backendNames]) {
  try {
    const r = await lastJsonLine(process.execPath, ['--import', 'tsx', join(here, 'lora-step.ts'), '--backend', backend, ...shapeArgs]);
    if (typeof r.unavailable === 'string') {
      skipped.push(`${backend}: ${r.unavailable}`);
      continue;
    }
    results.push({ label: `workbench ${backend}`, step_ms: Number(r.step_ms), tokens_per_s: Number(r.tokens_per_s), peak_rss_mb: Number(r.peak_rss_mb), note: String(r.adapter) });
  } catch (error) {
    skipped.push(`${backend}: the benchmark failed: ${(error as Error).message.split('\n')[0]}`);
  }
}

const rows = [...(torch ? [torch] : []), ...results];
const ratio = (r: StepFigures) => (torch ? (r.tokens_per_s / torch.tokens_per_s).toFixed(3) : 'n/a');
const table = [
  '| implementation | tokens/s | step (ms) | peak RSS (MiB) | tokens/s ÷ PyTorch | compute |',
  '| --- | ---: | ---: | ---: | ---: | --- |',
  ...rows.map((r) => `| ${r.label} | ${r.tokens_per_s.toFixed(0)} | ${r.step_ms.toFixed(1)} | ${r.peak_rss_mb.toFixed(0)} | ${ratio(r)} | ${r.note} |`),
].join('\n');

const machine = `${cpus()[0]?.model ?? 'unknown CPU'}, ${threads} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
const section = [
  `## LoRA train step, ${new Date().toISOString().slice(0, 10)}`,
  '',
  `Machine: ${machine}. Model: GPT-2 shape n_embd ${shape['n-embd']}, ${shape['n-layer']} layers, ${shape['n-head']} heads, vocab ${shape.vocab}; batch ${shape.batch} × ${shape.seq} tokens; LoRA r ${shape.rank} on c_attn and c_proj; median of 10 steps after 2 warm-up steps, forward + backward + AdamW.`,
  '',
  table,
  '',
  ...(skipped.length ? ['Not measured here:', ...skipped.map((s) => `- ${s}`), ''] : []),
].join('\n');

console.log(section);
appendFileSync(join(here, 'RESULTS.md'), `\n${section}`);
