// `npm run bench`: the LoRA training step of a GPT-2-shaped model (the embedded default model's shape) on
// every backend that loads here, next to the same step in PyTorch on the same CPU, as ratios measured in
// one run; then forward and train-step tokens/s per model family (bench/families.json) the same way.
// Appends both tables to bench/RESULTS.md with the date and the machine.
import { execFile } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { backendNames } from '../src-shared/config.ts';
import type { FamiliesFile } from './families.ts';

const run = promisify(execFile);
const here = import.meta.dirname;
const shape = { 'n-embd': 128, 'n-layer': 4, 'n-head': 4, vocab: 4096, seq: 64, batch: 8, rank: 8 };
const shapeArgs = Object.entries(shape).flatMap(([k, v]) => [`--${k}`, String(v)]);
const threads = cpus().length;
// Read here rather than imported from families.ts, which starts a backend when loaded.
const families = JSON.parse(readFileSync(join(here, 'families.json'), 'utf-8')) as FamiliesFile;

interface StepFigures {
  label: string;
  step_ms: number;
  tokens_per_s: number;
  peak_rss_mb: number;
  note: string;
}

function jsonLines(stdout: string): Record<string, unknown>[] {
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function lastJsonLine(command: string, args: string[]): Promise<Record<string, unknown>> {
  const { stdout } = await run(command, args, { maxBuffer: 16 << 20, timeout: 15 * 60_000 });
  const line = stdout
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .pop();
  if (!line) throw new Error(`${command} printed no result`);
  return JSON.parse(line) as Record<string, unknown>;
}

const results: StepFigures[] = [];
const skipped: string[] = [];

let torch: StepFigures | null = null;
try {
  const r = await lastJsonLine('/usr/bin/python3', [join(here, 'torch_lora_step.py'), ...shapeArgs, '--steps', '10', '--threads', String(threads)]);
  torch = {
    label: 'PyTorch (reference)',
    step_ms: Number(r.step_ms),
    tokens_per_s: Number(r.tokens_per_s),
    peak_rss_mb: Number(r.peak_rss_mb),
    note: `torch ${r.torch_version}, ${r.threads} threads, ${r.blas}`,
  };
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
    results.push({
      label: `workbench ${backend}`,
      step_ms: Number(r.step_ms),
      tokens_per_s: Number(r.tokens_per_s),
      peak_rss_mb: Number(r.peak_rss_mb),
      note: String(r.adapter),
    });
  } catch (error) {
    skipped.push(`${backend}: the benchmark failed: ${(error as Error).message.split('\n')[0]}`);
  }
}

// Per family: PyTorch once, then one process per backend (bench/families.ts), all in this run.
interface FamilyRow {
  family: string;
  mode: string;
  tokens_per_s: number;
}
const familyRows = new Map<string, FamilyRow[]>();
const familyNotes: string[] = [];
try {
  const { stdout } = await run('/usr/bin/python3', [join(here, 'torch_families.py'), '--threads', String(threads)], {
    maxBuffer: 16 << 20,
    timeout: 15 * 60_000,
  });
  familyRows.set('PyTorch', jsonLines(stdout) as unknown as FamilyRow[]);
} catch (error) {
  familyNotes.push(`PyTorch per family: ${(error as Error).message.split('\n')[0]}`);
}
for (const backend of [...backendNames]) {
  try {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', join(here, 'families.ts'), '--backend', backend], {
      maxBuffer: 16 << 20,
      timeout: 30 * 60_000,
    });
    const lines = jsonLines(stdout);
    // Unavailable backends are already listed under the LoRA-step table, with the reason.
    if (lines.some((l) => typeof l.unavailable === 'string')) continue;
    for (const l of lines.filter((l) => typeof l.failed === 'string')) familyNotes.push(`${backend} ${String(l.family)}: ${String(l.failed)}`);
    familyRows.set(backend, lines.filter((l) => typeof l.tokens_per_s === 'number') as unknown as FamilyRow[]);
  } catch (error) {
    familyNotes.push(`${backend} per family: the benchmark failed: ${(error as Error).message.split('\n')[0]}`);
  }
}

const rows = [...(torch ? [torch] : []), ...results];
const ratio = (r: StepFigures) => (torch ? (r.tokens_per_s / torch.tokens_per_s).toFixed(3) : 'n/a');
const table = [
  '| implementation | tokens/s | step (ms) | peak RSS (MiB) | tokens/s ÷ PyTorch | compute |',
  '| --- | ---: | ---: | ---: | ---: | --- |',
  ...rows.map((r) => `| ${r.label} | ${r.tokens_per_s.toFixed(0)} | ${r.step_ms.toFixed(1)} | ${r.peak_rss_mb.toFixed(0)} | ${ratio(r)} | ${r.note} |`),
].join('\n');

const implementations = [...familyRows.keys()];
const pytorch = familyRows.get('PyTorch') ?? [];
const keys = (familyRows.get('PyTorch') ?? [...familyRows.values()][0] ?? []).map((r) => `${r.family} ${r.mode}`);
const cell = (impl: string, key: string): string => {
  const row = familyRows.get(impl)?.find((r) => `${r.family} ${r.mode}` === key);
  if (!row) return '–';
  const reference = pytorch.find((r) => `${r.family} ${r.mode}` === key);
  return impl === 'PyTorch' || !reference
    ? row.tokens_per_s.toFixed(0)
    : `${row.tokens_per_s.toFixed(0)} (${(row.tokens_per_s / reference.tokens_per_s).toFixed(3)})`;
};
const familyTable = [
  `| family | mode | ${implementations.map((i) => `${i} tokens/s${i === 'PyTorch' ? '' : ' (÷ PyTorch)'}`).join(' | ')} |`,
  `| --- | --- | ${implementations.map(() => '---:').join(' | ')} |`,
  ...keys.map((key) => `| ${key.split(' ')[0]} | ${key.split(' ')[1]} | ${implementations.map((i) => cell(i, key)).join(' | ')} |`),
].join('\n');
const describeFamily = (name: string) => {
  const c = families.families[name]!.config;
  return c.model_type === 'gpt2'
    ? `${name} n_embd ${String(c.n_embd)}, ${String(c.n_layer)} layers`
    : `${name} hidden ${String(c.hidden_size)}, ${String(c.num_hidden_layers)} layers, ${String(c.num_attention_heads)} heads${c.num_key_value_heads ? ` / ${String(c.num_key_value_heads)} kv` : ''}`;
};

const machine = `${cpus()[0]?.model ?? 'unknown CPU'}, ${threads} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
const section = [
  `## LoRA train step, ${new Date().toISOString().slice(0, 10)}`,
  '',
  `Machine: ${machine}. Model: GPT-2 shape n_embd ${shape['n-embd']}, ${shape['n-layer']} layers, ${shape['n-head']} heads, vocab ${shape.vocab}; batch ${shape.batch} × ${shape.seq} tokens; LoRA r ${shape.rank} on c_attn and c_proj; median of 10 steps after 2 warm-up steps, forward + backward + AdamW.`,
  '',
  // BENCH_NOTE: what the figures need to be read with, such as other work loading the machine.
  ...(process.env.BENCH_NOTE ? [`Note: ${process.env.BENCH_NOTE}`, ''] : []),
  table,
  '',
  ...(skipped.length ? ['Not measured here:', ...skipped.map((s) => `- ${s}`), ''] : []),
  `### Per family, forward and LoRA train step`,
  '',
  `Same run and machine. Shapes from bench/families.json: ${Object.keys(families.families).map(describeFamily).join('; ')}; vocab ${String(families.families.gpt2?.config.vocab_size)}, batch ${families.batch} × ${families.seq} tokens. Forward: logits of the batch (BERT: masked-LM logits), one number read back. Train: forward + loss + backward to LoRA r ${families.lora.r} (${Object.entries(
    families.families,
  )
    .filter(([, f]) => f.loraTargets.length)
    .map(([name, f]) => `${name}: ${f.loraTargets.join(', ')}`)
    .join(
      '; ',
    )}) + clipping + AdamW. Median of the steps timed in about 6 s, at least 3, after 1 warm-up step (PyTorch: about 3 s, at least 5, after 2); PyTorch runs the same shapes in float32 with ${threads} threads on the same CPU (bench/torch_families.py).`,
  '',
  familyTable,
  '',
  ...(familyNotes.length ? ['Notes:', ...familyNotes.map((s) => `- ${s}`), ''] : []),
].join('\n');

console.log(section);
appendFileSync(join(here, 'RESULTS.md'), `\n${section}`);
