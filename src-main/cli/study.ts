// `lora-workbench study run|status|show|export`: a study recipe's grid of runs and evaluations, its
// progress, and its figures as tables, CSV and SVG.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BackendChoiceSchema } from '../../src-shared/config.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { figuresCsv, formatPoint, type FigureData } from '../../src-shared/study-figures.ts';
import type { BuiltInRecipe, Study, StudyStartRequestInput } from '../../src-shared/studies.ts';
import type { StudyDetail } from '../../src-shared/study-figures.ts';
import { figureSvg } from '../study-svg.ts';
import { call, DATA_DIR_HELP, openSession, parse, UsageError, type CliIo, type Session } from './common.ts';

const STUDY_HELP = `Usage: lora-workbench study run|status|show|export RECIPE [options]

A study runs a recipe's grid: one run per cell (every combination of its axes, times its seeds),
then the recipe's evaluations of each cell's adapter, one cell at a time. Runs and evaluations are
stored as ordinary ones, tagged with the study. Running the same recipe again continues its
unfinished study (finished cells are kept, an interrupted run resumes from its checkpoint), or
redraws its completed study with the recipe's figures; --fresh measures again from scratch.

RECIPE is a recipe file (JSON) or the name of a built-in recipe (resources/studies/NAME.json);
show and export also take a study id.

Commands:
  run RECIPE        run (or continue) the study, printing progress with an ETA; Ctrl-C stops it
                    after the current run's checkpoint (run it again to continue)
  status [RECIPE]   the studies (or the recipe's newest study): status, cells done, ETA
  show RECIPE       the figures as tables (mean ± spread over seeds) and the paper's claims
  export RECIPE --out DIR
                    figures.csv (every point: mean, std, sem, min, max, per-seed values) and one
                    SVG per figure (the Studies page downloads PNGs)
  list              the built-in recipes

Options (run):
  --data DIR        replaces \${data} in the recipe (the benchmark data, e.g. ../shared/data)
  --var NAME=VALUE  replaces \${NAME}; repeatable
  --steps N         training steps of every run
  --rows N          training rows (recipes with a data section, each task of a generation
                    recipe) and items per evaluation (a generation recipe's held-out rows)
  --model M         "default" or a Hugging Face model folder, for every run and evaluation
  --seeds LIST      comma-separated seeds (default: the recipe's)
  --backend B       ${BackendChoiceSchema.options.join(', ')}
  --fresh           a new study even where one of the same grid exists
  --out DIR         (export) where the files go
  --json            (status, show) print JSON
${DATA_DIR_HELP}
  -h, --help        show this help`;

/** How often `study run` looks at its study (a line is printed when it changed). */
const POLL_MS = 1000;
const PRINT_EVERY_MS = 10_000;

interface ReadRecipe {
  raw: Record<string, unknown>;
  file: string;
}

function readRecipe(spec: string, builtIns: BuiltInRecipe[]): ReadRecipe {
  const builtIn = builtIns.find((r) => r.name === spec || path.basename(r.file, '.json') === spec);
  const file = builtIn ? builtIn.file : path.resolve(spec);
  if (!existsSync(file)) {
    throw new UsageError(`No recipe file ${file} and no built-in recipe "${spec}" (built-in: ${builtIns.map((r) => r.name).join(', ') || 'none'}).`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new WorkbenchError('invalid_input', `Cannot read the study recipe ${file}: ${(error as Error).message}`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new WorkbenchError('invalid_input', `${file} must hold a JSON object (a study recipe).`);
  return { raw: raw as Record<string, unknown>, file };
}

function formatDuration(seconds: number | null): string {
  if (seconds === null) return '?';
  const s = Math.round(seconds);
  return s >= 3600
    ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
    : s >= 60
      ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
      : `${s}s`;
}

export function progressLine(study: Study): string {
  const p = study.progress;
  const current = p.current
    ? ` · ${p.current.key}: ${p.current.phase === 'training' ? 'training' : `evaluating ${p.current.evaluation ?? ''}`}${p.current.step !== null && p.current.maxSteps ? ` ${p.current.step}/${p.current.maxSteps}` : ''}`
    : '';
  return `${study.status} · ${p.cellsDone}/${p.cellsTotal} cells${current} · ETA ${formatDuration(p.etaSeconds)}`;
}

/** One figure as a table: a row per x value, a column per series, each cell mean ± spread. */
export function figureTable(figure: FigureData): string[] {
  const header = [figure.xLabel, ...figure.series.map((s) => s.label)];
  const rows = figure.xs.map((x, i) => [x, ...figure.series.map((s) => formatPoint(s.points[i] ?? null, figure.errorBars))]);
  const widths = header.map((_, c) => Math.max(...[header, ...rows].map((r) => r[c]!.length)));
  const line = (r: string[]) => `  ${r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ')}`.trimEnd();
  const spread = figure.errorBars === 'none' ? '' : ` (mean ${figure.errorBars === 'range' ? '[min, max]' : `± ${figure.errorBars}`} over seeds)`;
  return [
    `${figure.title}${figure.redraws ? ` — redraws ${figure.redraws}` : ''}`,
    `  ${figure.yLabel}${spread}`,
    line(header),
    ...rows.map(line),
    ...figure.notes.map((n) => `  note: ${n}`),
  ];
}

/** A study id, or the newest study of a recipe (by name). */
async function findStudy(session: Session, spec: string, builtIns: BuiltInRecipe[]): Promise<Study> {
  const studies = await call<Study[]>(session.api, 'studies.list');
  const byId = studies.find((s) => s.id === spec);
  if (byId) return byId;
  const name = existsSync(path.resolve(spec)) ? (readRecipe(spec, builtIns).raw.name as string) : spec;
  const byName = studies.find((s) => s.name === name);
  if (!byName) throw new WorkbenchError('not_found', `No study of "${name}" in ${session.paths.dataDir}. Run it first: lora-workbench study run ${spec}`);
  return byName;
}

function runRequest(values: Record<string, string | boolean | undefined>, vars: string[], recipe: ReadRecipe): StudyStartRequestInput {
  const integer = (name: string): number | undefined => {
    const raw = values[name];
    if (raw === undefined) return undefined;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name} must be a positive integer`);
    return n;
  };
  const variables: Record<string, string> = {};
  if (typeof values.data === 'string') variables.data = path.resolve(values.data);
  for (const pair of vars) {
    const [name, ...rest] = pair.split('=');
    if (!name || rest.length === 0) throw new UsageError(`--var takes NAME=VALUE (got "${pair}")`);
    variables[name] = rest.join('=');
  }
  const seeds = typeof values.seeds === 'string' ? values.seeds.split(',').map((s) => Number(s.trim())) : undefined;
  if (seeds && seeds.some((s) => !Number.isInteger(s) || s < 0)) throw new UsageError('--seeds takes comma-separated non-negative integers');
  const backend = values.backend === undefined ? undefined : BackendChoiceSchema.safeParse(values.backend);
  if (backend && !backend.success) throw new UsageError(`--backend must be one of ${BackendChoiceSchema.options.join(', ')}`);
  const model = typeof values.model === 'string' ? (values.model === 'default' ? 'default' : path.resolve(values.model)) : undefined;
  return {
    recipe: recipe.raw,
    variables,
    source: recipe.file,
    fresh: values.fresh === true,
    scale: { steps: integer('steps'), rows: integer('rows'), model, seeds, backend: backend?.data },
  };
}

async function runStudy(session: Session, request: StudyStartRequestInput, io: CliIo): Promise<number> {
  const study = await call<Study>(session.api, 'studies.start', request);
  io.out(`Study ${study.id} (${study.title}): ${study.progress.cellsTotal} cells, ${study.progress.cellsDone} already done. Data: ${session.paths.dataDir}`);
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts === 1) {
      io.err("Stopping the study after the current run's checkpoint… (Ctrl-C again to quit now; run the recipe again to continue)");
      session.api.studies.stop(study.id).catch(() => undefined);
    } else void session.close();
  };
  process.on('SIGINT', onSigint);
  try {
    // Polled through the API like the Studies page: the study runs in this process's StudyService.
    let final: Study;
    let last = { state: '', at: 0 };
    for (;;) {
      final = (await call<StudyDetail>(session.api, 'studies.get', study.id)).study;
      // A line when the cell or its phase changes, else every PRINT_EVERY_MS (steps and the ETA tick every second).
      const state = `${final.status} ${final.progress.cellsDone} ${final.progress.current?.key} ${final.progress.current?.phase} ${final.progress.current?.evaluation}`;
      if (state !== last.state || Date.now() - last.at >= PRINT_EVERY_MS) {
        io.out(progressLine(final));
        last = { state, at: Date.now() };
      }
      if (final.status !== 'running' && final.status !== 'queued') break;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
    if (final.status === 'completed') {
      const detail = await call<StudyDetail>(session.api, 'studies.get', study.id);
      for (const figure of detail.figures) io.out(['', ...figureTable(figure)].join('\n'));
      io.out(`\nExport: lora-workbench study export ${study.id} --out DIR`);
      return 0;
    }
    io.err(`Study ${final.id} ${final.status}${final.error ? `: ${final.error}` : ''}`);
    return final.status === 'stopped' || final.status === 'interrupted' ? 130 : 1;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

export async function studyCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      data: { type: 'string' },
      var: { type: 'string', multiple: true },
      steps: { type: 'string' },
      rows: { type: 'string' },
      model: { type: 'string' },
      seeds: { type: 'string' },
      backend: { type: 'string' },
      out: { type: 'string' },
      json: { type: 'boolean' },
      fresh: { type: 'boolean' },
    },
    2,
  );
  const [sub, spec] = positionals;
  if (values.help || sub === undefined) return (io.out(STUDY_HELP), values.help ? 0 : 2);
  if (!['run', 'status', 'show', 'export', 'list'].includes(sub)) throw new UsageError(`Unknown study command "${sub}" (run, status, show, export, list)`);
  if ((sub === 'run' || sub === 'show' || sub === 'export') && !spec)
    throw new UsageError(`study ${sub} needs a RECIPE (a file, a built-in name${sub === 'run' ? '' : ' or a study id'})`);
  if (sub === 'export' && typeof values.out !== 'string') throw new UsageError('study export needs --out DIR');
  const session = openSession(values['data-dir'] as string | undefined, 'headless');
  try {
    const builtIns = await call<BuiltInRecipe[]>(session.api, 'studies.recipes');
    if (sub === 'list') {
      for (const r of builtIns)
        io.out(
          `${r.name.padEnd(28)} ${r.title}${r.redraws ? ` (redraws ${r.redraws})` : ''}${r.variables.length ? ` [needs --${r.variables.join(', --')}]` : ''}`,
        );
      return 0;
    }
    if (sub === 'run')
      return await runStudy(session, runRequest(values, (values.var as unknown as string[] | undefined) ?? [], readRecipe(spec!, builtIns)), io);
    if (sub === 'status') {
      const studies = spec ? [await findStudy(session, spec, builtIns)] : await call<Study[]>(session.api, 'studies.list');
      if (values.json) return (io.out(JSON.stringify(studies, null, 2)), 0);
      if (studies.length === 0) return (io.out(`No studies yet in ${session.paths.dataDir}.`), 0);
      for (const s of studies) io.out(`${s.id}  ${s.name}  ${progressLine(s)}${s.error ? `\n  ${s.error}` : ''}`);
      return 0;
    }
    const study = await findStudy(session, spec!, builtIns);
    const detail = await call<StudyDetail>(session.api, 'studies.get', study.id);
    if (sub === 'show') {
      if (values.json) return (io.out(JSON.stringify(detail, null, 2)), 0);
      io.out(`${detail.study.title} (${detail.study.id}): ${progressLine(detail.study)}`);
      for (const figure of detail.figures) io.out(['', ...figureTable(figure)].join('\n'));
      const claims = detail.study.recipe.paper?.claims ?? [];
      if (claims.length > 0)
        io.out(['', `What ${detail.study.recipe.paper!.title} reports:`, ...claims.map((c) => `  - ${c.claim} (reported: ${c.reported})`)].join('\n'));
      return 0;
    }
    const out = path.resolve(values.out as string);
    mkdirSync(out, { recursive: true });
    writeFileSync(path.join(out, 'figures.csv'), figuresCsv(detail.figures));
    for (const figure of detail.figures) writeFileSync(path.join(out, `${figure.id}.svg`), figureSvg(figure));
    io.out(`Wrote figures.csv and ${detail.figures.map((f) => `${f.id}.svg`).join(', ')} to ${out}`);
    return 0;
  } finally {
    await session.close();
  }
}
