// What every CLI command shares: its output, the usage error (exit 2), argument parsing with the common
// options, and a session: the store and services one command works on, closed when it ends.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { dispatch, type SystemInfo, type WorkbenchApi } from '../../src-shared/api.ts';
import { createWorkbenchApi } from '../api.ts';
import type { EvalManager } from '../evals.ts';
import { resolvePaths, type WorkbenchPaths } from '../paths.ts';
import type { RunManager } from '../runs.ts';
import { createServices } from '../services.ts';
import { Store } from '../store/index.ts';

export interface CliIo {
  out(line: string): void;
  err(line: string): void;
}
let stdoutClosed = false;
export const processIo: CliIo = {
  out: (line) => {
    if (!stdoutClosed) process.stdout.write(`${line}\n`);
  },
  err: (line) => process.stderr.write(`${line}\n`),
};

/**
 * `lora-workbench runs | head -1`: once the reader has gone, stdout is dropped instead of the EPIPE error
 * killing the process with a stack trace; the command finishes its work (a training run goes on to its end).
 */
export function ignoreClosedStdout(): void {
  if (process.stdout.listeners('error').includes(onStdoutError)) return;
  process.stdout.on('error', onStdoutError);
}

function onStdoutError(error: NodeJS.ErrnoException): void {
  if (error.code !== 'EPIPE') throw error;
  stdoutClosed = true;
}

/** Rows of cells as left-aligned columns two spaces apart, the first row the header (the runs and datasets lists). */
export function printTable(io: CliIo, rows: readonly (readonly string[])[]): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  for (const row of rows)
    io.out(
      row
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    );
}

export class UsageError extends Error {}

export const DATA_DIR_HELP =
  '  --data-dir DIR    where runs, metrics and adapters are kept\n                    (default: $LORA_WORKBENCH_HOME, else ~/.lora-workbench)';

type Options = NonNullable<ParseArgsConfig['options']>;
const common: Options = { 'data-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' } };

export function parse(args: string[], options: Options, positionals: number) {
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

export interface Session {
  paths: WorkbenchPaths;
  store: Store;
  manager: RunManager;
  evals: EvalManager;
  api: WorkbenchApi;
  close(): Promise<void>;
}

export function openSession(dataDir: string | undefined, mode: SystemInfo['mode']): Session {
  const paths = resolvePaths({ dataDir });
  const store = Store.open(paths.dbFile);
  const services = createServices({ store, paths });
  const { manager, evals } = services;
  const api = createWorkbenchApi({ ...services, paths, mode });
  return {
    paths,
    store,
    manager,
    evals,
    api,
    close: async () => {
      await services.close();
      store.close();
    },
  };
}

export const call = <T>(api: WorkbenchApi, method: string, input?: unknown) => dispatch(api, method, input) as Promise<T>;
