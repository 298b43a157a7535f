// `node --import tsx bench/real-sizes.ts [--rows gpt2,smollm2,qwen2,tinyllama]`: the real-size
// rows, each measured in this one run: GPT-2 124M at 8 x 256 with transformers + PEFT on torch CPU
// (bench/peft_lora_step.py) and the workbench on wasm (bench/real-size-step.ts) one after the other,
// SmolLM2-135M and Qwen2.5-0.5B at 4 x 256 likewise, TinyLlama-1.1B with QLoRA NF4 on wasm (trains or
// is refused by the memory plan). Appends the table to bench/RESULTS.md with the date and the machine.
import { execFile } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { promisify } from 'node:util';

const run = promisify(execFile);
const here = import.meta.dirname;
const PYTHON = process.env.BENCH_PYTHON ?? '/work/main/.venv/bin/python';
const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: 'gpt2,smollm2,qwen2,tinyllama' },
    steps: { type: 'string', default: '10' },
    // The workbench's workers (train/data-parallel.ts): by default what a run picks here, one per core.
    workers: { type: 'string', default: String(availableParallelism()) },
  },
});
// dtype: the checkpoint's, as the workbench holds it (Qwen2.5 and TinyLlama ship bf16; PEFT trains in f32 on CPU either way).
const ROWS: Record<string, { batch: number; peft: boolean; method: string; family: string; dtype: string }> = {
  gpt2: { family: 'gpt2', batch: 8, peft: true, method: 'lora', dtype: 'f32' },
  smollm2: { family: 'smollm2', batch: 4, peft: true, method: 'lora', dtype: 'f32' },
  qwen2: { family: 'qwen2', batch: 4, peft: true, method: 'lora', dtype: 'bf16' },
  tinyllama: { family: 'tinyllama', batch: 4, peft: false, method: 'qlora', dtype: 'bf16' },
};

async function lastJson(command: string, args: string[]): Promise<Record<string, unknown>> {
  try {
    const { stdout } = await run(command, args, { maxBuffer: 16 << 20, timeout: 60 * 60_000 });
    const line = stdout
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .pop();
    return line ? (JSON.parse(line) as Record<string, unknown>) : { failed: 'no result printed' };
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    return { failed: (e.stderr?.trim().split('\n').pop() ?? e.message).slice(0, 300) };
  }
}

const lines: string[] = [];
for (const name of String(values.rows).split(',')) {
  const row = ROWS[name];
  if (!row) throw new Error(`unknown row ${name}; rows: ${Object.keys(ROWS).join(', ')}`);
  const common = ['--batch', String(row.batch), '--seq', '256', '--steps', String(values.steps)];
  const peft = row.peft ? await lastJson(PYTHON, [join(here, 'peft_lora_step.py'), '--family', row.family, ...common]) : null;
  const wb = await lastJson(process.execPath, [
    '--import',
    'tsx',
    join(here, 'real-size-step.ts'),
    '--family',
    row.family,
    '--method',
    row.method,
    '--backend',
    'wasm',
    '--dtype',
    row.dtype,
    '--workers',
    String(values.workers),
    ...common,
  ]);
  const mb = (v: unknown) => (typeof v === 'number' ? v.toFixed(0) : '–');
  const ratio = (a: unknown, b: unknown) => (typeof a === 'number' && typeof b === 'number' ? (a / b).toFixed(2) : '–');
  if (peft)
    lines.push(
      `| ${name} | transformers ${String(peft.transformers_version ?? '')} + PEFT ${String(peft.peft_version ?? '')}, torch ${String(peft.torch_version ?? '')} CPU | ${row.batch} x 256 | ${mb(peft.tokens_per_s)} | ${mb(peft.peak_rss_mb)} | 1 | 1 | ${String(peft.failed ?? '')} |`,
    );
  const note = wb.refused
    ? `refused by the memory plan: ${String(wb.refused)}`
    : wb.failed
      ? String(wb.failed)
      : `${String(wb.workers)} worker(s), ${row.dtype} weights, micro-batch ${String(wb.micro_batch)}, packing ${String(wb.packing)}, wasm heap ${mb(wb.wasm_heap_mb)} MiB, plan ${mb(wb.plan_total_mb)} MiB`;
  lines.push(
    `| ${name} | workbench wasm (${row.method}) | ${row.batch} x 256 | ${mb(wb.tokens_per_s)} | ${mb(wb.peak_rss_mb)} | ${ratio(wb.tokens_per_s, peft?.tokens_per_s)} | ${ratio(wb.peak_rss_mb, peft?.peak_rss_mb)} | ${note} |`,
  );
  console.log(lines.slice(-2).join('\n'));
}
const section = [
  `## Real sizes, ${new Date().toISOString().slice(0, 10)} (bench/real-sizes.ts)`,
  '',
  `Machine: ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}. Random weights of each model's shape; LoRA r 8 (GPT-2: c_attn, c_proj; Llama family: q_proj, v_proj); median of ${String(values.steps)} steps after 1 warm-up.`,
  ...(process.env.BENCH_NOTE ? ['', `Note: ${process.env.BENCH_NOTE}`] : []),
  '',
  '| model | implementation | batch | tokens/s | peak RSS (MiB) | tokens/s ÷ PEFT | RSS ÷ PEFT | notes |',
  '| --- | --- | --- | ---: | ---: | ---: | ---: | --- |',
  ...lines,
  '',
].join('\n');
appendFileSync(join(here, 'RESULTS.md'), `\n${section}`);
