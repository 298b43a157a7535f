// `lora-workbench datasets`: the user's own files registered, listed and removed through the DatasetRegistry.
import path from 'node:path';
import { datasetFormats, type Dataset, type DatasetPreview } from '../../src-shared/datasets.ts';
import { call, DATA_DIR_HELP, openSession, parse, printTable, UsageError, type CliIo } from './common.ts';

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

export async function datasetsCommand(args: string[], io: CliIo): Promise<number> {
  const columns = {
    prompt: { type: 'string' },
    completion: { type: 'string' },
    input: { type: 'string' },
    text: { type: 'string' },
    task: { type: 'string' },
  } as const;
  const { values, positionals } = parse(args, { ...columns, name: { type: 'string' }, format: { type: 'string' }, json: { type: 'boolean' } }, 2);
  if (values.help) return (io.out(DATASETS_HELP), 0);
  const [action, target] = positionals;
  if (action !== 'list' && action !== 'add' && action !== 'remove') throw new UsageError('datasets needs list, add FILE or remove ID');
  if (action !== 'list' && !target) throw new UsageError(`datasets ${action} needs ${action === 'add' ? 'a FILE' : 'a dataset ID'}`);
  if (action === 'list' && target) throw new UsageError(`Unexpected argument "${target}"`);
  if (values.format !== undefined && !(datasetFormats as readonly string[]).includes(values.format as string)) {
    throw new UsageError(`--format must be one of ${datasetFormats.join(', ')}`);
  }
  const mapping = Object.fromEntries(
    Object.keys(columns)
      .filter((k) => typeof values[k] === 'string')
      .map((k) => [k, values[k]]),
  );
  if (action === 'add' && typeof values.name !== 'string') throw new UsageError('datasets add needs --name N');
  if (action === 'add' && !('completion' in mapping) === !('text' in mapping))
    throw new UsageError('datasets add needs --completion COL (with an optional --prompt COL) or --text COL');

  const session = openSession(values['data-dir'] as string | undefined, 'headless');
  try {
    if (action === 'remove') {
      const dataset = session.store.datasets.require(target!);
      await call<Dataset[]>(session.api, 'datasets.remove', target);
      io.out(
        `Removed dataset ${dataset.id} (${dataset.name})${dataset.usedByRuns > 0 ? `; its file is kept for the ${dataset.usedByRuns} run(s) that trained on it: ${dataset.normalizedPath}` : '.'}`,
      );
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
      io.out(
        `Registered dataset ${dataset.id} (${dataset.name}): ${dataset.rowCount} rows, ${dataset.skippedRows} skipped, sha256 ${dataset.sha256.slice(0, 12)}…`,
      );
      io.out(`Train on it with "dataset": "${dataset.id}" in a run configuration.`);
      return 0;
    }
    const list = await call<Dataset[]>(session.api, 'datasets.list');
    if (values.json) return (io.out(JSON.stringify(list, null, 2)), 0);
    if (list.length === 0) return (io.out(`No datasets registered in ${session.paths.dataDir}. Add one with \`lora-workbench datasets add FILE\`.`), 0);
    const rows = [
      ['ID', 'NAME', 'ROWS', 'SKIPPED', 'SHA256', 'SOURCE'],
      ...list.map((d) => [d.id, d.name, String(d.rowCount), String(d.skippedRows), d.sha256.slice(0, 12), d.sourcePath]),
    ];
    printTable(io, rows);
    return 0;
  } finally {
    await session.close();
  }
}
