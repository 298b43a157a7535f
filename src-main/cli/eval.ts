// `lora-workbench eval`: an evaluation through the EvalManager, its progress, and the summary figures as tables.
import path from 'node:path';
import type { RunEvent } from '../../src-shared/api.ts';
import { BackendChoiceSchema, DEFAULT_MODEL } from '../../src-shared/config.ts';
import { evalSuites, perturbationFamilies, type EvalStartRequestInput, type Evaluation } from '../../src-shared/eval.ts';
import { call, DATA_DIR_HELP, openSession, parse, UsageError, type CliIo } from './common.ts';

const EVAL_HELP = `Usage: lora-workbench eval --suite ${evalSuites.join('|')} [options]

Evaluates the base model, or the base model with one of your adapters, on benchmark files you
downloaded (EVALUATION.md names the sources), prints progress, then the figures. The full
per-item result is kept in <data dir>/evals/<id>.json. Ctrl-C stops the evaluation.

Options:
  --suite S         ${evalSuites.join(', ')}
  --adapter ID      evaluate this adapter (ids: lora-workbench runs, then the run's adapter);
                    without it, the base model alone
  --model M         "${DEFAULT_MODEL}" or a Hugging Face model folder
                    (default: the adapter's base model, else "${DEFAULT_MODEL}")
  --crows-pairs FILE  CrowS-Pairs CSV (bias)
  --stereoset FILE    StereoSet dev JSON (bias)
  --bbq FILE_OR_DIR   BBQ JSONL file or a folder of them (bias)
  --qqp FILE          QQP TSV/JSONL (qqp; robustness with --task qqp)
  --hotpotqa FILE     HotpotQA JSON (hotpotqa; robustness with --task hotpotqa)
  --text FILE         text corpus (perplexity): plain text with documents between
                      <|endoftext|> lines (else blank lines), or JSONL with a "text" field
  --oasst1 FILE       OASST1 messages JSONL (perplexity of the assistant replies)
  --task T          robustness: the task it perturbs, qqp or hotpotqa (default: the one given)
  --families LIST   robustness: comma-separated perturbation families (default: all of
                    ${perturbationFamilies.join(', ')})
  --limit N         items per dataset, spread evenly over the file (default: all)
  --seed S          seed for sampling and perturbations (default 0)
  --backend B       ${BackendChoiceSchema.options.join(', ')} (default auto)
  --json            print the stored evaluation (with its summary figures) as JSON
${DATA_DIR_HELP}
  -h, --help        show this help

The bias suite needs at least one of --crows-pairs, --stereoset, --bbq; the perplexity suite
one of --text, --oasst1. Perplexity is scored as lm-evaluation-harness scores wikitext: every
token once, in rolling windows of the model's context, reported per token, word and byte.`;

function formatFigure(value: number): string {
  if (Number.isInteger(value)) return String(value);
  return value.toFixed(Math.abs(value) >= 10 ? 2 : 4);
}

/**
 * The summary as one table per dataset: a key's last segment is the column ("stereoPercent",
 * "icat", "biasScore"), the segments between the dataset and it are the row ("byBiasType.gender").
 */
export function summaryTables(summary: Record<string, number>): string[] {
  const sections = new Map<string, { columns: string[]; rows: Map<string, Map<string, number>> }>();
  for (const [key, value] of Object.entries(summary)) {
    const parts = key.split('.');
    const section = parts.length > 1 ? parts[0]! : '';
    const column = parts[parts.length - 1]!;
    const row = parts.slice(parts.length > 1 ? 1 : 0, -1).join('.') || 'overall';
    let table = sections.get(section);
    if (!table) sections.set(section, (table = { columns: [], rows: new Map() }));
    if (!table.columns.includes(column)) table.columns.push(column);
    let cells = table.rows.get(row);
    if (!cells) table.rows.set(row, (cells = new Map()));
    cells.set(column, value);
  }
  const lines: string[] = [];
  for (const [section, table] of sections) {
    const grid = [
      ['', ...table.columns],
      ...[...table.rows].map(([row, cells]) => [row, ...table.columns.map((c) => (cells.has(c) ? formatFigure(cells.get(c)!) : '-'))]),
    ];
    const widths = grid[0]!.map((_, i) => Math.max(...grid.map((r) => r[i]!.length)));
    if (lines.length > 0) lines.push('');
    if (section) lines.push(`${section}:`);
    for (const r of grid) lines.push(`  ${r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ')}`.trimEnd());
  }
  return lines;
}

export async function evalCommand(args: string[], io: CliIo): Promise<number> {
  const { values } = parse(
    args,
    {
      suite: { type: 'string' },
      adapter: { type: 'string' },
      model: { type: 'string' },
      'crows-pairs': { type: 'string' },
      stereoset: { type: 'string' },
      bbq: { type: 'string' },
      qqp: { type: 'string' },
      hotpotqa: { type: 'string' },
      text: { type: 'string' },
      oasst1: { type: 'string' },
      task: { type: 'string' },
      families: { type: 'string' },
      limit: { type: 'string' },
      seed: { type: 'string' },
      backend: { type: 'string' },
      json: { type: 'boolean' },
    },
    0,
  );
  if (values.help) return (io.out(EVAL_HELP), 0);
  const suite = values.suite;
  if (typeof suite !== 'string' || !(evalSuites as readonly string[]).includes(suite)) {
    throw new UsageError(`eval needs --suite ${evalSuites.join('|')}`);
  }
  const integer = (name: string, min: number): number | undefined => {
    const raw = values[name];
    if (raw === undefined) return undefined;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer of at least ${min}`);
    return n;
  };
  const backend = values.backend === undefined ? undefined : BackendChoiceSchema.safeParse(values.backend);
  if (backend && !backend.success) throw new UsageError(`--backend must be one of ${BackendChoiceSchema.options.join(', ')}`);
  const file = (name: string) => (typeof values[name] === 'string' ? path.resolve(values[name] as string) : undefined);
  const request: EvalStartRequestInput = {
    suite: suite as EvalStartRequestInput['suite'],
    datasets: {
      crowsPairs: file('crows-pairs'),
      stereoSet: file('stereoset'),
      bbq: file('bbq'),
      qqp: file('qqp'),
      hotpotqa: file('hotpotqa'),
      text: file('text'),
      oasst1: file('oasst1'),
    },
    ...(typeof values.adapter === 'string' ? { adapterId: values.adapter } : {}),
    ...(typeof values.model === 'string' ? { model: values.model === DEFAULT_MODEL ? DEFAULT_MODEL : path.resolve(values.model) } : {}),
    limit: integer('limit', 1) ?? null,
    ...(values.seed !== undefined ? { seed: integer('seed', 0) } : {}),
    ...(backend ? { backend: backend.data } : {}),
  };
  if (suite === 'robustness') {
    const task = values.task ?? (request.datasets.qqp ? 'qqp' : request.datasets.hotpotqa ? 'hotpotqa' : undefined);
    if (task !== 'qqp' && task !== 'hotpotqa')
      throw new UsageError("the robustness suite needs --task qqp|hotpotqa and that task's file (--qqp or --hotpotqa)");
    const families =
      typeof values.families === 'string'
        ? values.families
            .split(',')
            .map((f) => f.trim())
            .filter(Boolean)
        : [...perturbationFamilies];
    const unknown = families.filter((f) => !(perturbationFamilies as readonly string[]).includes(f));
    if (unknown.length > 0) throw new UsageError(`Unknown perturbation families: ${unknown.join(', ')} (see lora-workbench eval --help)`);
    request.robustness = { task, families: families as (typeof perturbationFamilies)[number][] };
  }

  const session = openSession(values['data-dir'] as string | undefined, 'headless');
  // With --json, stdout carries only the JSON document; progress goes to stderr.
  const progressOut = values.json ? io.err : io.out;
  try {
    const started = await call<Evaluation>(session.api, 'evals.start', request);
    progressOut(`Evaluation ${started.id} started (${started.suite}, model ${started.model}${started.adapterId ? `, adapter ${started.adapterId}` : ''})`);
    let lastPrinted = { done: -1, at: 0 };
    const unsubscribe = session.evals.subscribe((event: RunEvent) => {
      if (event.kind !== 'eval' || event.evaluation.id !== started.id) return;
      if (event.log) {
        (event.log.level === 'info' ? progressOut : io.err)(`${event.log.level === 'info' ? '' : `${event.log.level}: `}${event.log.message}`);
        return;
      }
      const p = event.evaluation.progress;
      const now = Date.now();
      if (!p || p.done === lastPrinted.done || (now - lastPrinted.at < 1000 && p.done < p.total)) return;
      lastPrinted = { done: p.done, at: now };
      progressOut(`scored ${String(p.done).padStart(String(p.total).length)}/${p.total}`);
    });
    let interrupts = 0;
    const onSigint = () => {
      interrupts++;
      if (interrupts === 1) {
        io.err('Stopping the evaluation… (Ctrl-C again to quit now)');
        session.evals.stop(started.id).catch(() => undefined);
      } else void session.evals.close();
    };
    process.on('SIGINT', onSigint);
    let final: Evaluation;
    try {
      final = await session.evals.waitFor(started.id);
    } finally {
      process.off('SIGINT', onSigint);
      unsubscribe();
    }
    if (values.json) io.out(JSON.stringify(final, null, 2));
    if (final.status === 'completed') {
      if (!values.json) {
        io.out(`Evaluation ${final.id} completed on ${final.backend?.name ?? '?'} (${final.backend?.adapter ?? '?'}).`);
        for (const slice of final.slices ?? []) io.out(`  ${slice.dataset}: ${slice.count} items from ${slice.path} (sha256 ${slice.sha256.slice(0, 12)}…)`);
        io.out('');
        for (const line of summaryTables(final.summary ?? {})) io.out(line);
        io.out('');
        io.out(`Full result: ${final.resultPath}`);
      }
      return 0;
    }
    io.err(`Evaluation ${final.id} ${final.status}${final.error ? `: ${final.error}` : '.'}`);
    return final.status === 'stopped' ? 130 : 1;
  } finally {
    await session.close();
  }
}
