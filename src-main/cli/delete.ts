// `lora-workbench delete` (runs.delete, adapters.delete, evals.delete) and `lora-workbench usage` (system.usage).
// A deletion cannot be undone, so without --yes the command says what it would delete and changes nothing.
import type { DataUsage } from '../../src-shared/api.ts';
import type { Evaluation } from '../../src-shared/eval.ts';
import type { Adapter, Run } from '../../src-shared/runs.ts';
import { call, DATA_DIR_HELP, openSession, parse, UsageError, type CliIo } from './common.ts';

const DELETE_HELP = `Usage: lora-workbench delete run|adapter|evaluation ID --yes [--data-dir DIR]

Deletes a run (its folder with checkpoints and final adapter, its metrics and its adapters; its
evaluations stay, without it), an adapter (its row and, inside the data folder, its files) or an
evaluation (its row and result file). A run that is training or an adapter being evaluated is
refused: stop it first. Without --yes, prints what would be deleted and exits 2.

Options:
  --yes             confirm the deletion
${DATA_DIR_HELP}
  -h, --help        show this help`;

const USAGE_HELP = `Usage: lora-workbench usage [--json] [--data-dir DIR]

Prints how much room the data folder takes, and each part of it (runs, datasets, exports, the database).

Options:
  --json            print it as JSON
${DATA_DIR_HELP}
  -h, --help        show this help`;

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

const kinds = {
  run: { method: 'runs.delete', lookup: 'runs.get', describe: (r: Run) => `run ${r.id} "${r.name}" (${r.status}) with its folder, metrics and adapters` },
  adapter: { method: 'adapters.delete', lookup: null, describe: (a: Adapter) => `adapter ${a.id} "${a.name}" (${a.path})` },
  evaluation: { method: 'evals.delete', lookup: 'evals.get', describe: (e: Evaluation) => `evaluation ${e.id} (${e.suite}, ${e.status}) with its result file` },
} as const;

export async function deleteCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, { yes: { type: 'boolean' } }, 2);
  if (values.help) return (io.out(DELETE_HELP), 0);
  const [kind, id] = positionals;
  if (!kind || !Object.hasOwn(kinds, kind)) throw new UsageError('delete needs what to delete: run, adapter or evaluation');
  if (!id) throw new UsageError(`delete ${kind} needs an ID`);
  const session = openSession(values['data-dir'] as string | undefined, 'headless');
  try {
    const spec = kinds[kind as keyof typeof kinds];
    const target =
      spec.lookup === null
        ? ((await call<Adapter[]>(session.api, 'adapters.list')).find((a) => a.id === id) ??
          (() => {
            throw new UsageError(`No adapter with id "${id}"`);
          })())
        : await call<never>(session.api, spec.lookup, id);
    const described = (spec.describe as (x: unknown) => string)(target);
    if (!values.yes) {
      io.err(`This would delete ${described}. Run again with --yes to delete it.`);
      return 2;
    }
    await call(session.api, spec.method, id);
    const usage = await call<DataUsage>(session.api, 'system.usage');
    io.out(`Deleted ${described}. The data folder now takes ${formatBytes(usage.bytes)}.`);
    return 0;
  } finally {
    await session.close();
  }
}

export async function usageCommand(args: string[], io: CliIo): Promise<number> {
  const { values } = parse(args, { json: { type: 'boolean' } }, 0);
  if (values.help) return (io.out(USAGE_HELP), 0);
  const session = openSession(values['data-dir'] as string | undefined, 'headless');
  try {
    const usage = await call<DataUsage>(session.api, 'system.usage');
    if (values.json) return (io.out(JSON.stringify(usage, null, 2)), 0);
    io.out(`${usage.dataDir}: ${formatBytes(usage.bytes)}`);
    for (const part of usage.parts) io.out(`  ${formatBytes(part.bytes).padStart(8)}  ${part.name}`);
    return 0;
  } finally {
    await session.close();
  }
}
