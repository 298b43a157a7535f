// Headless front door: the same RunManager and WorkbenchApi as the app, reached through `dispatch`.
// Exit codes: 0 done, 1 the work failed, 2 the command line was wrong, 130 stopped by Ctrl-C.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { dispatch, type RunEvent, type SystemInfo, type WorkbenchApi } from '../src-shared/api.ts';
import { BackendChoiceSchema, DEFAULT_MODEL, SAMPLE_DATASET, defaultRunConfig } from '../src-shared/config.ts';
import { WorkbenchError } from '../src-shared/errors.ts';
import { methodDescriptors } from '../src-shared/methods.ts';
import { evalSuites, perturbationFamilies, type EvalStartRequestInput, type Evaluation } from '../src-shared/eval.ts';
import type { ExportReport, Run } from '../src-shared/runs.ts';
import { datasetFormats, type Dataset, type DatasetPreview } from '../src-shared/datasets.ts';
import type { ModelImportResult } from '../src-shared/models.ts';
import { createWorkbenchApi } from './api.ts';
import { isDatasetId } from './datasets.ts';
import { resolvePaths, type WorkbenchPaths } from './paths.ts';
import type { EvalManager } from './evals.ts';
import type { RunManager } from './runs.ts';
import { createServices } from './services.ts';
import { startServer } from './server/index.ts';
import { Store } from './store/index.ts';

export interface CliIo {
  out(line: string): void;
  err(line: string): void;
}
const processIo: CliIo = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

class UsageError extends Error {}

const DATA_DIR_HELP = '  --data-dir DIR    where runs, metrics and adapters are kept\n                    (default: $LORA_WORKBENCH_HOME, else ~/.lora-workbench)';

const TOP_HELP = `lora-workbench: fine-tune language models on your own machine with low-rank adapters.

Usage: lora-workbench <command> [options]

Commands:
  train --config run.json   train an adapter from a run configuration
  resume RUN_ID             continue an interrupted, stopped or failed run from its last checkpoint
  export RUN_ID --out DIR   write a run's adapter as a Hugging Face PEFT folder and verify it
  serve                     open the workbench in a browser (loopback server)
  runs                      list runs
  eval --suite S            evaluate the base model or an adapter (${evalSuites.join(', ')})
  datasets list|add|remove  register your own JSONL/CSV/TSV file as a dataset, list or remove them
  import-llama2c MODEL.bin TOKENIZER.bin --out DIR
                            convert a llama2.c checkpoint into a Hugging Face Llama folder

Options:
  -h, --help        show help; \`lora-workbench <command> --help\` shows a command's options

Run \`npm start\` for the desktop app.`;

function trainHelp(): string {
  const fields = methodDescriptors
    .map((m) => [`  method "${m.id}" (${m.label})${m.extends ? `, also reads the ${m.extends} settings` : ''}:`, ...m.fields.map((f) => `    ${`${m.settingsKey}.${f.key}`.padEnd(24)} ${f.help}${f.kind === 'choice' ? ` One of: ${f.options.join(', ')}.` : ''}`)].join('\n'))
    .join('\n');
  return `Usage: lora-workbench train --config run.json [--backend B] [--data-dir DIR]

Trains one run in this process and prints a line per second with step, loss, tokens/s and ETA.
Ctrl-C stops after writing a checkpoint (resume it with \`lora-workbench resume RUN_ID\`);
a second Ctrl-C quits at once (the run is marked interrupted and can still be resumed).

Options:
  --config FILE     run configuration (JSON); omitted fields take the defaults below
  --backend B       override the config's backend: ${BackendChoiceSchema.options.join(', ')}
${DATA_DIR_HELP}
  -h, --help        show this help

"model" is "${DEFAULT_MODEL}" (the embedded model) or a Hugging Face model folder; "dataset" is
"${SAMPLE_DATASET}", a registered dataset's id (lora-workbench datasets list) or a JSONL file. Relative paths are taken from the config file's folder.

Method settings:
${fields}

Defaults:
${JSON.stringify(defaultRunConfig(), null, 2)}`;
}

const RESUME_HELP = `Usage: lora-workbench resume RUN_ID [--data-dir DIR]

Continues an interrupted, stopped or failed run from its last checkpoint, printing progress like train.

Options:
${DATA_DIR_HELP}
  -h, --help        show this help`;

const EXPORT_HELP = `Usage: lora-workbench export RUN_ID [--out DIR] [--format peft|flattened|merged] [--data-dir DIR]

Writes adapter_model.safetensors and adapter_config.json (loadable by Hugging Face PEFT as they
are), reads them back and compares the model's logits with the trained adapter and the base model.
A completed run exports its final adapter, any other run its last checkpoint. RUN_ID may also be
an adapter id. Exits 1 when the verification fails.

Options:
  --out DIR         output folder (default: <data dir>/exports/<run name>-step<N>)
  --format F        peft (default): the adapter as PEFT loads it; flattened: SeLoRA's plain LoRA
                    at the mean semantic vector, with what that costs; merged: the adapter folded
                    into the base weights, a full Hugging Face model folder
${DATA_DIR_HELP}
  -h, --help        show this help`;

const SERVE_HELP = `Usage: lora-workbench serve [--port N] [--host 127.0.0.1] [--no-open] [--data-dir DIR]

Serves the workbench to a browser. Prints one line, \`Workbench: <url>\`, when ready: the URL carries
a token made for this launch, and only pages opened with it can use the workbench. Ctrl-C quits;
runs still training are marked interrupted and can be resumed later.

Options:
  --port N          port to listen on (default 0: any free port)
  --host ADDR       address to listen on (default 127.0.0.1; other addresses expose the
                    workbench to your network, protected only by the token)
  --no-open         do not open a browser
${DATA_DIR_HELP}
  -h, --help        show this help`;

const RUNS_HELP = `Usage: lora-workbench runs [--json] [--data-dir DIR]

Lists runs, newest first.

Options:
  --json            print the runs as JSON
${DATA_DIR_HELP}
  -h, --help        show this help`;

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

type Options = NonNullable<ParseArgsConfig['options']>;
const common: Options = { 'data-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' } };

function parse(args: string[], options: Options, positionals: number) {
  let parsed;
  try {
    parsed = parseArgs({ args, options: { ...common, ...options }, allowPositionals: positionals > 0, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (!parsed.values.help && parsed.positionals.length > positionals) {
    throw new UsageError(`Unexpected argument "${parsed.positionals[positionals]}"`);
  }
  return parsed as { values: Record<string, string | boolean | undefined>; positionals: string[] };
}

interface Session {
  paths: WorkbenchPaths;
  store: Store;
  manager: RunManager;
  evals: EvalManager;
  api: WorkbenchApi;
  close(): Promise<void>;
}

function openSession(dataDir: string | undefined, mode: SystemInfo['mode']): Session {
  const paths = resolvePaths({ dataDir });
  const store = Store.open(paths.dbFile);
  const services = createServices({ store, paths });
  const { manager, evals } = services;
  const api = createWorkbenchApi({ ...services, paths, mode });
  return {
    paths, store, manager, evals, api,
    close: async () => {
      await services.close();
      store.close();
    },
  };
}

const call = <T>(api: WorkbenchApi, method: string, input?: unknown) => dispatch(api, method, input) as Promise<T>;

function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

/** Prints the run's progress until its worker is gone; Ctrl-C stops it with a checkpoint. */
async function follow(session: Session, run: Run, io: CliIo): Promise<number> {
  const { manager } = session;
  let loss: number | null = null;
  let valLoss: number | null = null;
  let lastPrinted = { step: -1, at: 0 };
  const unsubscribe = manager.subscribe((event: RunEvent) => {
    if (event.kind === 'metrics' && event.runId === run.id) {
      for (const p of event.points) {
        if (p.name === 'train/loss') loss = p.value;
        if (p.name === 'val/loss') valLoss = p.value;
      }
    } else if (event.kind === 'log' && event.runId === run.id) {
      (event.level === 'info' ? io.out : io.err)(`${event.level === 'info' ? '' : `${event.level}: `}${event.message}`);
    } else if (event.kind === 'run' && event.run.id === run.id && event.run.progress) {
      const p = event.run.progress;
      const now = Date.now();
      if (p.step === lastPrinted.step || (now - lastPrinted.at < 1000 && p.step < p.maxSteps && lastPrinted.step >= 0)) return;
      lastPrinted = { step: p.step, at: now };
      const width = String(p.maxSteps).length;
      io.out(
        `step ${String(p.step).padStart(width)}/${p.maxSteps}` +
          `  loss ${loss === null ? '   -  ' : (loss as number).toFixed(4)}` +
          (valLoss === null ? '' : `  val ${(valLoss as number).toFixed(4)}`) +
          `  ${Math.round(p.tokensPerSecond).toLocaleString('en-US')} tok/s` +
          `  ETA ${formatDuration(p.etaSeconds)}`,
      );
    }
  });

  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts === 1) {
      io.err('Stopping after a checkpoint… (Ctrl-C again to quit now)');
      manager.stop(run.id).catch(() => undefined);
    } else {
      io.err('Quitting now; the run is marked interrupted and can be resumed.');
      void manager.close();
    }
  };
  process.on('SIGINT', onSigint);
  try {
    const final = await manager.waitForRun(run.id);
    switch (final.status) {
      case 'completed':
        io.out(`Run ${final.id} completed at step ${final.progress?.step ?? '?'}; adapter ${final.adapterId}.`);
        io.out(`Export it with: lora-workbench export ${final.id} --out DIR`);
        return 0;
      case 'stopped':
      case 'interrupted':
        io.err(
          `Run ${final.id} ${final.status}` +
            (final.lastCheckpointStep !== null ? ` (last checkpoint: step ${final.lastCheckpointStep}); resume it with: lora-workbench resume ${final.id}` : ' before its first checkpoint.'),
        );
        return 130;
      default:
        io.err(`Run ${final.id} ${final.status}: ${final.error ?? 'no reason given'}`);
        return 1;
    }
  } finally {
    process.off('SIGINT', onSigint);
    unsubscribe();
  }
}

async function train(args: string[], io: CliIo): Promise<number> {
  const { values } = parse(args, { config: { type: 'string' }, backend: { type: 'string' } }, 0);
  if (values.help) return io.out(trainHelp()), 0;
  if (typeof values.config !== 'string') throw new UsageError('train needs --config FILE (see lora-workbench train --help)');
  const backend = values.backend === undefined ? undefined : BackendChoiceSchema.safeParse(values.backend);
  if (backend && !backend.success) throw new UsageError(`--backend must be one of ${BackendChoiceSchema.options.join(', ')}`);

  const configFile = path.resolve(values.config);
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(readFileSync(configFile, 'utf8')) as Record<string, unknown>;
  } catch (error) {
    throw new WorkbenchError('invalid_input', `Cannot read the run configuration ${configFile}: ${(error as Error).message}`);
  }
  if (!config || typeof config !== 'object' || Array.isArray(config)) {
    throw new WorkbenchError('invalid_input', `${configFile} must hold a JSON object (see lora-workbench train --help)`);
  }
  const base = path.dirname(configFile);
  if (typeof config.model === 'string' && config.model !== DEFAULT_MODEL) config.model = path.resolve(base, config.model);
  if (typeof config.dataset === 'string' && config.dataset !== SAMPLE_DATASET && !isDatasetId(config.dataset)) config.dataset = path.resolve(base, config.dataset);
  if (backend) config.backend = backend.data;

  const session = openSession(values['data-dir'] as string | undefined, 'headless');
  try {
    const run = await call<Run>(session.api, 'runs.start', config);
    io.out(`Run ${run.id} started (data: ${session.paths.runDir(run.id)})`);
    return await follow(session, run, io);
  } finally {
    await session.close();
  }
}

async function resume(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, {}, 1);
  if (values.help) return io.out(RESUME_HELP), 0;
  if (!positionals[0]) throw new UsageError('resume needs a RUN_ID (list them with lora-workbench runs)');
  const session = openSession(values['data-dir'] as string | undefined, 'headless');
  try {
    const run = await call<Run>(session.api, 'runs.resume', positionals[0]);
    io.out(`Run ${run.id} resumed from step ${run.lastCheckpointStep}`);
    return await follow(session, run, io);
  } finally {
    await session.close();
  }
}

async function exportCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, { out: { type: 'string' }, format: { type: 'string' } }, 1);
  if (values.help) return io.out(EXPORT_HELP), 0;
  const formats = ['peft', 'flattened', 'merged'];
  if (values.format !== undefined && !formats.includes(values.format as string)) throw new UsageError(`--format must be one of ${formats.join(', ')}`);
  const id = positionals[0];
  if (!id) throw new UsageError('export needs a RUN_ID (list them with lora-workbench runs)');
  const session = openSession(values['data-dir'] as string | undefined, 'headless');
  try {
    const isAdapter = session.manager.adapters().some((a) => a.id === id);
    const report = await call<ExportReport>(session.api, 'exports.create', {
      ...(isAdapter ? { adapterId: id } : { runId: id }),
      ...(typeof values.out === 'string' ? { outDir: path.resolve(values.out) } : {}),
      ...(typeof values.format === 'string' ? { format: values.format } : {}),
    });
    io.out(`Exported to ${report.outDir}`);
    const width = Math.max(...report.files.map((f) => f.name.length));
    for (const file of report.files) io.out(`  ${file.name.padEnd(width)}  ${file.bytes.toLocaleString('en-US').padStart(12)} bytes`);
    const v = report.verification;
    io.out(`Verification: max |logits difference| to the trained adapter ${v.maxAbsDiffToTrained.toExponential(3)} (must be ~0),`);
    io.out(`              to the base model ${v.maxAbsDiffToBase.toExponential(3)} (must be > 0): ${v.passed ? 'passed' : 'FAILED'}`);
    if (report.note) io.out(report.note);
    if (report.flattening) io.out(`Flattening ${report.flattening.fromMethod} costs up to ${report.flattening.maxAbsLogitDiffToNative.toExponential(3)} in logits against the native adapter (verification probe).`);
    return v.passed ? 0 : 1;
  } finally {
    await session.close();
  }
}

function openBrowser(url: string): void {
  const [command, args] =
    process.platform === 'darwin' ? ['open', [url]] : process.platform === 'win32' ? ['cmd', ['/c', 'start', '""', url]] : ['xdg-open', [url]];
  try {
    const child = spawn(command as string, args as string[], { stdio: 'ignore', detached: true });
    child.on('error', () => undefined); // no browser here: the printed URL is enough
    child.unref();
  } catch {
    // Same: opening a browser is a convenience.
  }
}

async function serve(args: string[], io: CliIo): Promise<number> {
  const { values } = parse(args, { port: { type: 'string' }, host: { type: 'string' }, 'no-open': { type: 'boolean' } }, 0);
  if (values.help) return io.out(SERVE_HELP), 0;
  const port = values.port === undefined ? 0 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError('--port must be an integer from 0 to 65535');
  const session = openSession(values['data-dir'] as string | undefined, 'browser');
  let server;
  try {
    server = await startServer({ api: session.api, port, host: (values.host as string | undefined) ?? '127.0.0.1', rendererDir: session.paths.rendererDir });
  } catch (error) {
    await session.close();
    throw new WorkbenchError('conflict', `Cannot listen on port ${port}: ${(error as Error).message}. Choose another --port, or 0 for any free one.`);
  }
  io.out(`Workbench: ${server.url}`);
  if (!values['no-open']) openBrowser(server.url);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  io.err('Shutting down…');
  await server.close();
  await session.close();
  return 0;
}

async function runs(args: string[], io: CliIo): Promise<number> {
  const { values } = parse(args, { json: { type: 'boolean' } }, 0);
  if (values.help) return io.out(RUNS_HELP), 0;
  const session = openSession(values['data-dir'] as string | undefined, 'headless');
  try {
    const list = await call<Run[]>(session.api, 'runs.list');
    if (values.json) return io.out(JSON.stringify(list, null, 2)), 0;
    if (list.length === 0) return io.out(`No runs yet in ${session.paths.dataDir}.`), 0;
    const rows = [
      ['ID', 'NAME', 'STATUS', 'STEP', 'CHECKPOINT', 'BACKEND', 'CREATED'],
      ...list.map((r) => [
        r.id,
        r.name || '-',
        r.status,
        `${r.progress?.step ?? 0}/${r.config.training.maxSteps}`,
        r.lastCheckpointStep === null ? '-' : String(r.lastCheckpointStep),
        r.backend?.name ?? '-',
        r.createdAt.replace('T', ' ').slice(0, 19),
      ]),
    ];
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
    for (const row of rows) io.out(row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
    return 0;
  } finally {
    await session.close();
  }
}

const IMPORT_HELP = `Usage: lora-workbench import-llama2c MODEL.bin TOKENIZER.bin --out DIR

Converts a checkpoint of Karpathy's llama2.c (legacy version 0 .bin, as run.c reads it) and its
tokenizer .bin into a Hugging Face Llama folder (config.json, model.safetensors, tokenizer.json,
tokenizer_config.json, generation_config.json). The folder then trains, evaluates and generates
like any Llama folder: pass it as "model" in a run configuration, or as --model to eval.

Options:
  --out DIR         the new folder (it must not exist, or be empty)
  --json            print the result (files and the folder's inspection) as JSON
${DATA_DIR_HELP}
  -h, --help        show this help`;

async function importLlama2cCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, { out: { type: 'string' }, json: { type: 'boolean' } }, 2);
  if (values.help) return io.out(IMPORT_HELP), 0;
  const [checkpoint, tokenizer] = positionals;
  if (!checkpoint || !tokenizer) throw new UsageError('import-llama2c needs the model .bin and the tokenizer .bin');
  if (typeof values.out !== 'string') throw new UsageError('import-llama2c needs --out DIR');
  const session = openSession(values['data-dir'] as string | undefined, 'headless');
  try {
    const result = await call<ModelImportResult>(session.api, 'models.import', {
      format: 'llama2c', checkpoint: path.resolve(checkpoint), tokenizer: path.resolve(tokenizer), outDir: path.resolve(values.out),
    });
    if (values.json) return io.out(JSON.stringify(result, null, 2)), 0;
    const i = result.inspection;
    io.out(`Imported ${path.resolve(checkpoint)} into ${result.outDir}: ${i.modelType}, ${i.parameterCount.toLocaleString('en-US')} parameters.`);
    for (const file of result.files) io.out(`  ${file}`);
    for (const warning of i.warnings) io.err(`warning: ${warning}`);
    return 0;
  } finally {
    await session.close();
  }
}

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
    const grid = [['', ...table.columns], ...[...table.rows].map(([row, cells]) => [row, ...table.columns.map((c) => (cells.has(c) ? formatFigure(cells.get(c)!) : '-'))])];
    const widths = grid[0]!.map((_, i) => Math.max(...grid.map((r) => r[i]!.length)));
    if (lines.length > 0) lines.push('');
    if (section) lines.push(`${section}:`);
    for (const r of grid) lines.push(`  ${r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ')}`.trimEnd());
  }
  return lines;
}

async function evalCommand(args: string[], io: CliIo): Promise<number> {
  const { values } = parse(
    args,
    {
      suite: { type: 'string' }, adapter: { type: 'string' }, model: { type: 'string' },
      'crows-pairs': { type: 'string' }, stereoset: { type: 'string' }, bbq: { type: 'string' }, qqp: { type: 'string' }, hotpotqa: { type: 'string' },
      text: { type: 'string' }, oasst1: { type: 'string' },
      task: { type: 'string' }, families: { type: 'string' },
      limit: { type: 'string' }, seed: { type: 'string' }, backend: { type: 'string' }, json: { type: 'boolean' },
    },
    0,
  );
  if (values.help) return io.out(EVAL_HELP), 0;
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
    datasets: { crowsPairs: file('crows-pairs'), stereoSet: file('stereoset'), bbq: file('bbq'), qqp: file('qqp'), hotpotqa: file('hotpotqa'), text: file('text'), oasst1: file('oasst1') },
    ...(typeof values.adapter === 'string' ? { adapterId: values.adapter } : {}),
    ...(typeof values.model === 'string' ? { model: values.model === DEFAULT_MODEL ? DEFAULT_MODEL : path.resolve(values.model) } : {}),
    limit: integer('limit', 1) ?? null,
    ...(values.seed !== undefined ? { seed: integer('seed', 0) } : {}),
    ...(backend ? { backend: backend.data } : {}),
  };
  if (suite === 'robustness') {
    const task = values.task ?? (request.datasets.qqp ? 'qqp' : request.datasets.hotpotqa ? 'hotpotqa' : undefined);
    if (task !== 'qqp' && task !== 'hotpotqa') throw new UsageError('the robustness suite needs --task qqp|hotpotqa and that task\'s file (--qqp or --hotpotqa)');
    const families = typeof values.families === 'string' ? values.families.split(',').map((f) => f.trim()).filter(Boolean) : [...perturbationFamilies];
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

const DATASETS_HELP = `Usage: lora-workbench datasets list [--json] [--data-dir DIR]
       lora-workbench datasets add FILE --name N --completion COL [--prompt COL] [--input COL] [--task COL]
       lora-workbench datasets add FILE --name N --text COL [--task COL]
       lora-workbench datasets remove ID

Registers your own JSONL, CSV or TSV file (with a header row) as a dataset: its rows are mapped
column by column onto prompt / completion (or text, trained on every token) and written once as the
workbench's JSONL under <data dir>/datasets/. Bad rows are listed by line and left out. Runs name a
registered dataset by its id in "dataset" (see lora-workbench train --help).

Options:
  --name N          the dataset's name (unique among registered datasets)
  --prompt COL      column the model is conditioned on (no loss on it); optional
  --completion COL  column the model learns to produce
  --input COL       Alpaca's input column: the prompt becomes instruction + input in Alpaca's layout
  --text COL        plain text, loss on every token (instead of --prompt / --completion)
  --task COL        optional task label per row
  --format F        jsonl, csv or tsv (default: from the file's extension, else its content)
  --json            list: print the datasets as JSON
${DATA_DIR_HELP}
  -h, --help        show this help

remove takes a dataset off the list; runs that trained on it keep its normalized file.`;

async function datasetsCommand(args: string[], io: CliIo): Promise<number> {
  const columns = { prompt: { type: 'string' }, completion: { type: 'string' }, input: { type: 'string' }, text: { type: 'string' }, task: { type: 'string' } } as const;
  const { values, positionals } = parse(args, { ...columns, name: { type: 'string' }, format: { type: 'string' }, json: { type: 'boolean' } }, 2);
  if (values.help) return io.out(DATASETS_HELP), 0;
  const [action, target] = positionals;
  if (action !== 'list' && action !== 'add' && action !== 'remove') throw new UsageError('datasets needs list, add FILE or remove ID');
  if (action !== 'list' && !target) throw new UsageError(`datasets ${action} needs ${action === 'add' ? 'a FILE' : 'a dataset ID'}`);
  if (action === 'list' && target) throw new UsageError(`Unexpected argument "${target}"`);
  if (values.format !== undefined && !(datasetFormats as readonly string[]).includes(values.format as string)) {
    throw new UsageError(`--format must be one of ${datasetFormats.join(', ')}`);
  }
  const mapping = Object.fromEntries(Object.keys(columns).filter((k) => typeof values[k] === 'string').map((k) => [k, values[k]]));
  if (action === 'add' && typeof values.name !== 'string') throw new UsageError('datasets add needs --name N');
  if (action === 'add' && !('completion' in mapping) === !('text' in mapping)) throw new UsageError('datasets add needs --completion COL (with an optional --prompt COL) or --text COL');

  const session = openSession(values['data-dir'] as string | undefined, 'headless');
  try {
    if (action === 'remove') {
      const dataset = session.store.datasets.require(target!);
      await call<Dataset[]>(session.api, 'datasets.remove', target);
      io.out(`Removed dataset ${dataset.id} (${dataset.name})${dataset.usedByRuns > 0 ? `; its file is kept for the ${dataset.usedByRuns} run(s) that trained on it: ${dataset.normalizedPath}` : '.'}`);
      return 0;
    }
    if (action === 'add') {
      const file = path.resolve(target!);
      const format = values.format as Dataset['format'] | undefined;
      // The preview lists the bad rows by line; registering only counts them.
      const preview = await call<DatasetPreview>(session.api, 'datasets.preview', { path: file, format, mapping, rows: 1 });
      for (const e of preview.errors.slice(0, 10)) io.err(`warning: ${path.basename(file)} line ${e.line}: ${e.message}`);
      if (preview.errorCount > 10) io.err(`warning: … and ${preview.errorCount - 10} more bad rows`);
      const dataset = await call<Dataset>(session.api, 'datasets.register', { path: file, name: values.name, format, mapping });
      io.out(`Registered dataset ${dataset.id} (${dataset.name}): ${dataset.rowCount} rows, ${dataset.skippedRows} skipped, sha256 ${dataset.sha256.slice(0, 12)}…`);
      io.out(`Train on it with "dataset": "${dataset.id}" in a run configuration.`);
      return 0;
    }
    const list = await call<Dataset[]>(session.api, 'datasets.list');
    if (values.json) return io.out(JSON.stringify(list, null, 2)), 0;
    if (list.length === 0) return io.out(`No datasets registered in ${session.paths.dataDir}. Add one with \`lora-workbench datasets add FILE\`.`), 0;
    const rows = [
      ['ID', 'NAME', 'ROWS', 'SKIPPED', 'SHA256', 'SOURCE'],
      ...list.map((d) => [d.id, d.name, String(d.rowCount), String(d.skippedRows), d.sha256.slice(0, 12), d.sourcePath]),
    ];
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
    for (const row of rows) io.out(row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
    return 0;
  } finally {
    await session.close();
  }
}

const commands: Record<string, (args: string[], io: CliIo) => Promise<number>> = {
  train, resume, export: exportCommand, serve, runs, eval: evalCommand, datasets: datasetsCommand, 'import-llama2c': importLlama2cCommand,
};

export async function runCli(argv: string[], io: CliIo = processIo): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
      io.out(TOP_HELP);
      return command === undefined ? 2 : 0;
    }
    const run = commands[command];
    if (!run) throw new UsageError(`Unknown command "${command}"`);
    return await run(rest, io);
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`lora-workbench: ${error.message}`);
      io.err(`Run \`lora-workbench ${command && commands[command] ? `${command} ` : ''}--help\` for usage.`);
      return 2;
    }
    const e = WorkbenchError.from(error);
    io.err(`lora-workbench: ${e.message}`);
    return 1;
  }
}
