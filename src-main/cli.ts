// Headless front door: the same RunManager and WorkbenchApi as the app, reached through `dispatch`.
// Exit codes: 0 done, 1 the work failed, 2 the command line was wrong, 130 stopped by Ctrl-C.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { RunEvent } from '../src-shared/api.ts';
import { BackendChoiceSchema, DEFAULT_MODEL, SAMPLE_DATASET, defaultRunConfig } from '../src-shared/config.ts';
import { WorkbenchError } from '../src-shared/errors.ts';
import { evalSuites } from '../src-shared/eval.ts';
import { methodDescriptors } from '../src-shared/methods.ts';
import type { ExportReport, Run } from '../src-shared/runs.ts';
import { call, DATA_DIR_HELP, ignoreClosedStdout, openSession, parse, printTable, processIo, UsageError, type CliIo, type Session } from './cli/common.ts';
import { datasetsCommand } from './cli/datasets.ts';
import { deleteCommand, usageCommand } from './cli/delete.ts';
import { engineCommand, exportJobCommand, importRunCommand } from './cli/engine.ts';
import { evalCommand } from './cli/eval.ts';
import { importLlama2cCommand } from './cli/import-llama2c.ts';
import { adaptersCommand } from './cli/adapters.ts';
import { studyCommand } from './cli/study.ts';
import { isDatasetId } from './datasets.ts';
import { startServer } from './server/index.ts';
import { writeLaunchPage } from './server/launch-page.ts';

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
  engine setup pytorch|status
                            set up the pytorch engine's Python environment, or show the engines
  export-job RUN_CONFIG --out DIR [--launcher torchrun|accelerate|slurm]
                            write a folder that trains the run on a cluster node
  import-run DIR            bring an exported job's metrics, checkpoints and adapter back as a run
  study run|status|show|export RECIPE
                            run a study recipe's grid of runs and evaluations, redraw its figures
  delete run|adapter|evaluation ID --yes
                            delete a run (with its folder), an adapter or an evaluation
  usage                     how much room the data folder takes
  adapters import DIR --base MODEL
                            add a PEFT LoRA adapter trained elsewhere to the library

Options:
  -h, --help        show help; \`lora-workbench <command> --help\` shows a command's options

Run \`npm start\` for the desktop app.`;

function trainHelp(): string {
  const fields = methodDescriptors
    .map((m) =>
      [
        `  method "${m.id}" (${m.label})${m.extends ? `, also reads the ${m.extends} settings` : ''}:`,
        ...m.fields.map((f) => `    ${`${m.settingsKey}.${f.key}`.padEnd(24)} ${f.help}${f.kind === 'choice' ? ` One of: ${f.options.join(', ')}.` : ''}`),
      ].join('\n'),
    )
    .join('\n');
  return `Usage: lora-workbench train --config run.json [--backend B] [--data-dir DIR]

Trains one run in this process and prints a line per second with step, loss, tokens/s and ETA.
Ctrl-C stops after writing a checkpoint (resume it with \`lora-workbench resume RUN_ID\`);
a second Ctrl-C quits at once (the run is marked interrupted and can still be resumed).

Options:
  --config FILE     run configuration (JSON); omitted fields take the defaults below;
                    or the JSON itself: --config '{"training": {"maxSteps": 5}}'
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

const EXPORT_HELP = `Usage: lora-workbench export RUN_ID [--out DIR] [--overwrite] [--format peft|flattened|merged] [--data-dir DIR]

Writes adapter_model.safetensors and adapter_config.json (loadable by Hugging Face PEFT as they
are), reads them back and compares the model's logits with the trained adapter and the base model.
A completed run exports its final adapter, any other run its last checkpoint. RUN_ID may also be
an adapter id. Exits 1 when the verification fails.

Options:
  --out DIR         output folder, new or empty (default: <data dir>/exports/<run name>-step<N>)
  --overwrite       write into --out even though it holds files, replacing those the export writes
  --format F        peft (default): the adapter as PEFT loads it; flattened: SeLoRA's plain LoRA
                    at the mean semantic vector, with what that costs; merged: the adapter folded
                    into the base weights, a full Hugging Face model folder
${DATA_DIR_HELP}
  -h, --help        show this help`;

const SERVE_HELP = `Usage: lora-workbench serve [--port N] [--host 127.0.0.1] [--no-open] [--data-dir DIR]

Serves the workbench to a browser. Prints one line, \`Workbench: <url>\`, when ready: the URL carries
a token made for this launch, and only pages opened with it can use the workbench. The browser is
opened on a private file in the data folder that forwards to that URL, so the token is not on any
command line. Ctrl-C quits;
runs still training are marked interrupted and can be resumed later.

Options:
  --port N          port to listen on (default 0: any free port)
  --host ADDR       address to listen on (default 127.0.0.1; other addresses expose the
                    workbench to your network, protected only by the token)
  --no-open         do not open a browser (for a remote shell, or to open the printed URL yourself)
${DATA_DIR_HELP}
  -h, --help        show this help`;

const RUNS_HELP = `Usage: lora-workbench runs [--json] [--data-dir DIR]

Lists runs, newest first.

Options:
  --json            print the runs as JSON
${DATA_DIR_HELP}
  -h, --help        show this help`;

function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

/**
 * Prints the run's progress until its worker is gone; Ctrl-C stops it with a checkpoint. A line is printed
 * when a step's train/loss point arrives (the points are stored in the same flush), so the step and the
 * loss on a line are the step and loss the store holds: printing on progress events showed the loss of
 * 1-3 steps earlier, and after a resume the run row's stale step before the new ones.
 */
export async function follow(session: Pick<Session, 'manager'>, run: Run, io: CliIo): Promise<number> {
  const { manager } = session;
  let valLoss: number | null = null;
  let progress: Run['progress'] = null;
  let lastPrinted = { step: -1, at: 0 };
  const maxSteps = run.config.training.maxSteps;
  const width = String(maxSteps).length;
  const unsubscribe = manager.subscribe((event: RunEvent) => {
    if (event.kind === 'run' && event.run.id === run.id) {
      progress = event.run.progress;
    } else if (event.kind === 'metrics' && event.runId === run.id) {
      let latest: { step: number; loss: number } | null = null;
      for (const p of event.points) {
        if (p.name === 'val/loss') valLoss = p.value;
        if (p.name === 'train/loss' && (latest === null || p.step >= latest.step)) latest = { step: p.step, loss: p.value };
      }
      if (latest === null || latest.step <= lastPrinted.step) return;
      const now = Date.now();
      if (now - lastPrinted.at < 1000 && latest.step < maxSteps && lastPrinted.step >= 0) return;
      lastPrinted = { step: latest.step, at: now };
      const rate = progress as Run['progress'];
      io.out(
        `step ${String(latest.step).padStart(width)}/${maxSteps}` +
          `  loss ${latest.loss.toFixed(4)}` +
          (valLoss === null ? '' : `  val ${(valLoss as number).toFixed(4)}`) +
          (rate ? `  ${Math.round(rate.tokensPerSecond).toLocaleString('en-US')} tok/s  ETA ${formatDuration(rate.etaSeconds)}` : ''),
      );
    } else if (event.kind === 'log' && event.runId === run.id) {
      (event.level === 'info' ? io.out : io.err)(`${event.level === 'info' ? '' : `${event.level}: `}${event.message}`);
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
            (final.lastCheckpointStep !== null
              ? ` (last checkpoint: step ${final.lastCheckpointStep}); resume it with: lora-workbench resume ${final.id}`
              : ' before its first checkpoint.'),
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

/**
 * `--config` is a file, or the JSON itself when it starts with "{" (`--config '{"training": {"maxSteps": 5}}'`).
 * Relative paths inside are taken from the file's folder, or from the working folder for inline JSON.
 */
export function readRunConfig(argument: string): { config: Record<string, unknown>; base: string } {
  const inline = argument.trimStart().startsWith('{');
  const source = inline ? 'The --config JSON' : path.resolve(argument);
  let config: unknown;
  try {
    config = JSON.parse(inline ? argument : readFileSync(source, 'utf8'));
  } catch (error) {
    throw new WorkbenchError(
      'invalid_input',
      inline ? `${source} does not parse: ${(error as Error).message}` : `Cannot read the run configuration ${source}: ${(error as Error).message}`,
    );
  }
  if (!config || typeof config !== 'object' || Array.isArray(config)) {
    throw new WorkbenchError('invalid_input', `${source} must hold a JSON object (see lora-workbench train --help)`);
  }
  return { config: config as Record<string, unknown>, base: inline ? process.cwd() : path.dirname(source) };
}

async function train(args: string[], io: CliIo): Promise<number> {
  const { values } = parse(args, { config: { type: 'string' }, backend: { type: 'string' } }, 0);
  if (values.help) return (io.out(trainHelp()), 0);
  if (typeof values.config !== 'string') throw new UsageError("train needs --config FILE or --config '{...}' (see lora-workbench train --help)");
  const backend = values.backend === undefined ? undefined : BackendChoiceSchema.safeParse(values.backend);
  if (backend && !backend.success) throw new UsageError(`--backend must be one of ${BackendChoiceSchema.options.join(', ')}`);

  const { config, base } = readRunConfig(values.config);
  if (typeof config.model === 'string' && config.model !== DEFAULT_MODEL) config.model = path.resolve(base, config.model);
  if (typeof config.dataset === 'string' && config.dataset !== SAMPLE_DATASET && !isDatasetId(config.dataset))
    config.dataset = path.resolve(base, config.dataset);
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
  if (values.help) return (io.out(RESUME_HELP), 0);
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
  const { values, positionals } = parse(args, { out: { type: 'string' }, format: { type: 'string' }, overwrite: { type: 'boolean' } }, 1);
  if (values.help) return (io.out(EXPORT_HELP), 0);
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
      overwrite: values.overwrite === true,
    });
    io.out(`Exported to ${report.outDir}`);
    const width = Math.max(...report.files.map((f) => f.name.length));
    for (const file of report.files) io.out(`  ${file.name.padEnd(width)}  ${file.bytes.toLocaleString('en-US').padStart(12)} bytes`);
    const v = report.verification;
    io.out(`Verification: max |logits difference| to the trained adapter ${v.maxAbsDiffToTrained.toExponential(3)} (must be ~0),`);
    io.out(`              to the base model ${v.maxAbsDiffToBase.toExponential(3)} (must be > 0): ${v.passed ? 'passed' : 'FAILED'}`);
    if (report.note) io.out(report.note);
    if (report.flattening)
      io.out(
        `Flattening ${report.flattening.fromMethod} costs up to ${report.flattening.maxAbsLogitDiffToNative.toExponential(3)} in logits against the native adapter (verification probe).`,
      );
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
  if (values.help) return (io.out(SERVE_HELP), 0);
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
  // The browser opens a private file that forwards to the URL: the token never appears on a command line (ps).
  const launch = values['no-open'] ? null : writeLaunchPage(session.paths.dataDir, server.url);
  if (launch) openBrowser(pathToFileURL(launch.file).href);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  launch?.remove();
  io.err('Shutting down…');
  await server.close();
  await session.close();
  return 0;
}

async function runs(args: string[], io: CliIo): Promise<number> {
  const { values } = parse(args, { json: { type: 'boolean' } }, 0);
  if (values.help) return (io.out(RUNS_HELP), 0);
  const session = openSession(values['data-dir'] as string | undefined, 'headless');
  try {
    const list = await call<Run[]>(session.api, 'runs.list');
    if (values.json) return (io.out(JSON.stringify(list, null, 2)), 0);
    if (list.length === 0) return (io.out(`No runs yet in ${session.paths.dataDir}.`), 0);
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
    printTable(io, rows);
    return 0;
  } finally {
    await session.close();
  }
}

const commands: Record<string, (args: string[], io: CliIo) => Promise<number>> = {
  train,
  resume,
  export: exportCommand,
  serve,
  runs,
  eval: evalCommand,
  datasets: datasetsCommand,
  'import-llama2c': importLlama2cCommand,
  study: studyCommand,
  delete: deleteCommand,
  usage: usageCommand,
  adapters: adaptersCommand,
  engine: engineCommand,
  'export-job': exportJobCommand,
  'import-run': importRunCommand,
};

export async function runCli(argv: string[], io: CliIo = processIo): Promise<number> {
  if (io === processIo) ignoreClosedStdout();
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
