// Studies: a recipe (a base run config, axes, seeds, evaluations, figures) expanded into a grid of
// cells, each an ordinary run plus its evaluations; and the figures drawn from their stored results.
// Pure: the main process runs the grid, the renderer and the CLI draw the same figure data.
import { z } from 'zod';
import { BackendChoiceSchema, methodSettingsKeys, migrateStoredRunConfig, RunConfigSchema, type RunConfigInput } from './config.ts';
import { validate, WorkbenchError } from './errors.ts';
import { EvalStartRequestSchema } from './eval.ts';
import { sgLoraGenerators } from './sg-lora.ts';

const Name = z.string().regex(/^[A-Za-z][\w-]*$/, 'letters, digits, _ and -, starting with a letter');
/** The axis a generation recipe's figures draw: the held-out task (its cells' level), one value per task. */
export const GENERATION_AXIS = 'task';
/** The level naming a generation recipe's expert cells (the task each trains on). */
export const EXPERT_LEVEL = 'expert';

/** A dotted path: "training.seed", "loraPlus.ratio", "data.imbalance.ratio". */
const DottedPath = z.string().regex(/^[A-Za-z_]\w*(\.[A-Za-z_0-9]\w*)*$/, 'a dotted field path such as training.seed');

/**
 * One dimension of the grid. With `path`, each value is set at that path; without it, each value is an
 * object of path -> value set together (a method with its own settings: {"method": "lora-plus",
 * "loraPlus.ratio": 1}). Paths address the run config; "data.…" addresses the training-data preparation.
 */
export const StudyAxisSchema = z
  .object({
    name: Name,
    path: DottedPath.optional(),
    values: z.array(z.unknown()).min(1),
    /** Shown on the figure; default: the value as JSON (strings bare). */
    labels: z.array(z.string().min(1)).optional(),
  })
  .superRefine((axis, ctx) => {
    if (axis.labels && axis.labels.length !== axis.values.length) {
      ctx.addIssue({ code: 'custom', path: ['labels'], message: `needs one label per value (${axis.values.length})` });
    }
    if (!axis.path) {
      axis.values.forEach((value, i) => {
        const ok = value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).every((k) => DottedPath.safeParse(k).success);
        if (!ok) ctx.addIssue({ code: 'custom', path: ['values', i], message: 'without a path, each value is an object of "dotted.path": value' });
      });
    }
  });
export type StudyAxis = z.infer<typeof StudyAxisSchema>;

/**
 * The training data a cell trains on, written by the runner from a JSONL source: fields mapped through
 * `values`, rendered through the templates ({field} is the row's field, {a.0.b} a path into it), optionally imbalanced on a label.
 */
export const StudyDataSchema = z.object({
  source: z.string().min(1),
  prompt: z.string(),
  completion: z.string().min(1),
  task: z.string().optional(),
  /** Per field, the text each raw value becomes ({"is_duplicate": {"0": "no", "1": "yes"}}). */
  values: z.record(z.string(), z.record(z.string(), z.string())).default({}),
  /** Keep only rows whose field (as text) equals the value: {"pp_split": "train"}. */
  filter: z.record(z.string(), z.string()).default({}),
  /** Rows kept, spread evenly over the source (after the imbalance); null: all. */
  rows: z.number().int().min(1).nullable().default(null),
  /** Rows with `field` = `majority` are kept at `ratio` times the rows of each other value (ratio 1: balanced). */
  imbalance: z.object({ field: z.string().min(1), majority: z.string(), ratio: z.number().min(1) }).optional(),
  /** Every n-th row the filter keeps is held out: never trained on, and scored by a generation recipe. */
  heldOut: z.number().int().min(2).optional(),
  /** More sources appended, each with its own templates (a second task for a task mixture). */
  also: z
    .array(
      z.object({
        source: z.string().min(1),
        prompt: z.string(),
        completion: z.string().min(1),
        task: z.string().optional(),
        values: z.record(z.string(), z.record(z.string(), z.string())).default({}),
        rows: z.number().int().min(1).nullable().default(null),
      }),
    )
    .default([]),
});
export type StudyData = z.infer<typeof StudyDataSchema>;

/** One evaluation of each cell's adapter: evals.start's request without the adapter (the runner fills it in). */
export const StudyEvaluationSchema = EvalStartRequestSchema.omit({ adapterId: true }).extend({ id: Name });
export type StudyEvaluation = z.infer<typeof StudyEvaluationSchema>;

/** Where a figure's y value comes from: a key of an evaluation's summary, or a run metric. */
export const StudyMetricSchema = z.union([
  z.object({
    evaluation: Name,
    /** A summary key ("qqp.scores.f1"); "{x}" is replaced by the x value when x lists values. */
    key: z.string().min(1),
    label: z.string().optional(),
  }),
  z.object({
    /** A run metric ("val/loss"): its last value, its minimum, or (x: step) its curve. */
    run: z.string().min(1),
    reduce: z.enum(['last', 'min']).default('last'),
    label: z.string().optional(),
  }),
  z.object({
    /** A generation recipe's held-out loss of one adapter: the generated one, a baseline, or the base model. */
    generation: z.enum(['sg-lora', 'merge', 'best-expert', 'mean-expert', 'own-expert', 'base']),
    label: z.string().optional(),
  }),
]);
export type StudyMetric = z.infer<typeof StudyMetricSchema>;

export const errorBarKinds = ['std', 'sem', 'range', 'none'] as const;

export const StudyFigureSchema = z.object({
  id: Name,
  title: z.string().min(1),
  /** The paper's figure or table this redraws ("SeLoRA, Table 2"). */
  redraws: z.string().optional(),
  kind: z.enum(['bar', 'line']).default('bar'),
  /** An axis of the grid; values substituted for "{x}" in the metric key (a perturbation level); or training steps. */
  x: z.union([
    z.object({ axis: Name }),
    z.object({ values: z.array(z.union([z.number(), z.string()])).min(1), label: z.string().min(1) }),
    z.object({ steps: z.literal(true) }),
  ]),
  /** One series per level of an axis, or per metric; absent: one series. */
  series: z.union([z.object({ axis: Name }), z.object({ metrics: z.array(StudyMetricSchema).min(1) })]).optional(),
  /** Required unless the series list metrics. */
  metric: StudyMetricSchema.optional(),
  /** Keep only the cells at these axis labels. */
  where: z.record(z.string(), z.string()).default({}),
  /** Over seeds: standard deviation (n-1), standard error, min-max, or none. */
  errorBars: z.enum(errorBarKinds).default('std'),
});
export type StudyFigure = z.infer<typeof StudyFigureSchema>;

/** What a paper reports, for the verdict column. `reported` says "not stated in the design docs" where unknown. */
export const StudyClaimSchema = z.object({ claim: z.string().min(1), reported: z.string().min(1), figure: Name.optional() });

/**
 * SG-LoRA's leave-one-task-out: one expert per task is trained (a cell each), then for every task an adapter
 * is generated from the other tasks' experts and its description alone, beside a merge of those experts;
 * each is scored (perplexity suite: loss per completion token given its prompt) on the task's held-out rows with the base model, every
 * other expert (the best is what picking one by hand could reach) and the task's own expert (the oracle).
 */
export const StudyGenerationSchema = z.object({
  tasks: z
    .array(
      z.object({
        name: Name,
        /** What the bank's semantic encoder compares: the only thing generation knows of a held-out task. */
        description: z.string().min(1).max(5000),
        /** The expert's training data; its held-out rows (data.heldOut, default 5) are the task's test set. */
        data: StudyDataSchema,
      }),
    )
    .min(3, 'leave-one-task-out needs at least three tasks (a held-out one and a bank of two)'),
  /** Held-out rows scored per task (spread evenly over them). */
  heldOutRows: z.number().int().min(1).default(40),
  generator: z.enum(sgLoraGenerators).default('semantic-merge'),
  topK: z.number().int().min(1).max(64).default(3),
  temperature: z.number().positive().max(10).default(0.1),
  /** Rank of the generated and the merged adapter (truncated SVD of the merged Delta W). */
  r: z.number().int().min(1).max(1024).default(8),
});
export type StudyGeneration = z.infer<typeof StudyGenerationSchema>;

/** The default of data.heldOut in a generation recipe: one row in five is the task's test set. */
export const DEFAULT_HELD_OUT_EVERY = 5;

export const StudyRecipeSchema = z
  .object({
    name: Name,
    title: z.string().min(1),
    description: z.string().default(''),
    paper: z.object({ title: z.string().min(1), redraws: z.string().min(1), claims: z.array(StudyClaimSchema).default([]) }).optional(),
    /** A run config (RunConfig's fields; omitted ones take the defaults). Checked whole once every axis is applied. */
    base: z.record(z.string(), z.unknown()).default({}),
    data: StudyDataSchema.optional(),
    axes: z.array(StudyAxisSchema).default([]),
    /** Each cell trains once per seed (set at training.seed); figures average over them. */
    seeds: z.array(z.number().int().min(0)).min(1).default([42]),
    evaluations: z.array(StudyEvaluationSchema).default([]),
    figures: z.array(StudyFigureSchema).default([]),
    /** SG-LoRA leave-one-task-out instead of a grid of axes: experts trained, then adapters generated per held-out task. */
    generation: StudyGenerationSchema.optional(),
  })
  .superRefine((recipe, ctx) => {
    if (recipe.generation) {
      // A generation recipe's grid is its tasks (the figures' "task" axis) times its seeds.
      for (const field of ['axes', 'evaluations'] as const)
        if (recipe[field].length > 0)
          ctx.addIssue({ code: 'custom', path: [field], message: `a generation recipe varies the held-out task; leave "${field}" out` });
      if (recipe.data) ctx.addIssue({ code: 'custom', path: ['data'], message: 'a generation recipe gives each task its data (generation.tasks.N.data)' });
      const names = new Set<string>();
      recipe.generation.tasks.forEach((task, i) => {
        if (names.has(task.name)) ctx.addIssue({ code: 'custom', path: ['generation', 'tasks', i, 'name'], message: `task "${task.name}" is named twice` });
        names.add(task.name);
      });
      if (recipe.generation.topK > recipe.generation.tasks.length - 1)
        ctx.addIssue({
          code: 'custom',
          path: ['generation', 'topK'],
          message: `the bank of a held-out task has ${recipe.generation.tasks.length - 1} experts; topK must not exceed it`,
        });
    }
    const axes = new Set<string>(recipe.generation ? [GENERATION_AXIS] : []);
    recipe.axes.forEach((axis, i) => {
      if (axes.has(axis.name)) ctx.addIssue({ code: 'custom', path: ['axes', i, 'name'], message: `axis "${axis.name}" is named twice` });
      axes.add(axis.name);
      const dataPaths = axis.path ? [axis.path] : axis.values.flatMap((v) => Object.keys(v as object));
      if (!recipe.data && dataPaths.some((p) => p.startsWith('data.'))) {
        ctx.addIssue({ code: 'custom', path: ['axes', i, 'path'], message: 'a data.… path needs the recipe\'s "data" section' });
      }
    });
    const evaluations = new Set(recipe.evaluations.map((e) => e.id));
    const checkMetric = (metric: StudyMetric, path: (string | number)[]) => {
      if ('generation' in metric && !recipe.generation)
        ctx.addIssue({ code: 'custom', path: [...path, 'generation'], message: 'a generation metric needs the recipe\'s "generation" section' });
      if ('evaluation' in metric && !evaluations.has(metric.evaluation)) {
        ctx.addIssue({
          code: 'custom',
          path: [...path, 'evaluation'],
          message: `no evaluation "${metric.evaluation}" in this recipe (have: ${[...evaluations].join(', ') || 'none'})`,
        });
      }
    };
    recipe.figures.forEach((figure, i) => {
      const at = (...rest: (string | number)[]) => ['figures', i, ...rest];
      if ('axis' in figure.x && !axes.has(figure.x.axis))
        ctx.addIssue({ code: 'custom', path: at('x', 'axis'), message: `no axis "${figure.x.axis}" in this recipe` });
      if (figure.series && 'axis' in figure.series && !axes.has(figure.series.axis)) {
        ctx.addIssue({ code: 'custom', path: at('series', 'axis'), message: `no axis "${figure.series.axis}" in this recipe` });
      }
      for (const name of Object.keys(figure.where))
        if (!axes.has(name)) ctx.addIssue({ code: 'custom', path: at('where', name), message: `no axis "${name}" in this recipe` });
      const metrics = figure.series && 'metrics' in figure.series ? figure.series.metrics : [];
      if (!figure.metric && metrics.length === 0)
        ctx.addIssue({ code: 'custom', path: at('metric'), message: 'a figure needs a metric (or series listing metrics)' });
      if (figure.metric) checkMetric(figure.metric, at('metric'));
      metrics.forEach((m, k) => checkMetric(m, at('series', 'metrics', k)));
      if ('steps' in figure.x && [figure.metric, ...metrics].some((m) => m && !('run' in m))) {
        ctx.addIssue({ code: 'custom', path: at('x'), message: 'x: steps draws run metrics (metric: {"run": "val/loss"})' });
      }
    });
  });
export type StudyRecipe = z.infer<typeof StudyRecipeSchema>;
export type StudyRecipeInput = z.input<typeof StudyRecipeSchema>;

export function parseRecipe(raw: unknown, what = 'study recipe'): StudyRecipe {
  return validate(StudyRecipeSchema, raw, what);
}

/** "${data}" and the like, replaced in every string of a recipe before it is validated. */
export function substituteVariables(raw: unknown, variables: Record<string, string>, where: string[] = []): unknown {
  if (typeof raw === 'string') {
    return raw.replace(/\$\{(\w+)\}/g, (_, name: string) => {
      const value = variables[name];
      if (value === undefined) {
        throw new WorkbenchError(
          'invalid_input',
          `${where.join('.') || 'recipe'} uses \${${name}}; give it on the command line (--${name} VALUE) or in the Studies form.`,
          {
            field: where.join('.'),
            variable: name,
          },
        );
      }
      return value;
    });
  }
  if (Array.isArray(raw)) return raw.map((v, i) => substituteVariables(v, variables, [...where, String(i)]));
  if (raw && typeof raw === 'object') return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, substituteVariables(v, variables, [...where, k])]));
  return raw;
}

/** Sizes a recipe for the machine: training steps, rows (training data and every evaluation's limit), model, seeds, backend. */
export interface StudyScale {
  steps?: number;
  rows?: number;
  model?: string;
  seeds?: number[];
  backend?: string;
}

export function scaleRecipe(recipe: StudyRecipe, scale: StudyScale): StudyRecipe {
  let base = recipe.base;
  if (scale.steps !== undefined) base = setPath(base, 'training.maxSteps', scale.steps);
  if (scale.model !== undefined) base = setPath(base, 'model', scale.model);
  if (scale.backend !== undefined) base = setPath(base, 'backend', scale.backend);
  return parseRecipe({
    ...recipe,
    base,
    data:
      recipe.data && scale.rows !== undefined
        ? { ...recipe.data, rows: scale.rows, also: recipe.data.also.map((part) => ({ ...part, rows: scale.rows! })) }
        : recipe.data,
    seeds: scale.seeds ?? recipe.seeds,
    generation: recipe.generation && {
      ...recipe.generation,
      ...(scale.rows !== undefined ? { heldOutRows: scale.rows } : {}),
      tasks: recipe.generation.tasks.map((task) => ({ ...task, data: { ...task.data, ...(scale.rows !== undefined ? { rows: scale.rows } : {}) } })),
    },
    evaluations: recipe.evaluations.map((e) => ({
      ...e,
      ...(scale.rows !== undefined ? { limit: scale.rows } : {}),
      ...(scale.backend !== undefined ? { backend: scale.backend } : {}),
      ...(scale.model !== undefined ? { model: scale.model } : {}),
    })),
  });
}

/** A copy of `target` with `value` at the dotted path, creating objects on the way (the original is left as it was). */
export function setPath<T extends Record<string, unknown>>(target: T, dotted: string, value: unknown): T {
  const [head, ...rest] = dotted.split('.') as [string, ...string[]];
  const current = target[head];
  const child = current !== null && typeof current === 'object' && !Array.isArray(current) ? (current as Record<string, unknown>) : {};
  return { ...target, [head]: rest.length === 0 ? structuredClone(value) : setPath(child, rest.join('.'), value) };
}

export function axisLabel(axis: StudyAxis, index: number): string {
  if (axis.labels) return axis.labels[index]!;
  const value = axis.values[index];
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** The axes a recipe's figures can draw: its own, or a generation recipe's held-out task. */
export function figureAxes(recipe: StudyRecipe): StudyAxis[] {
  if (!recipe.generation) return recipe.axes;
  return [{ name: GENERATION_AXIS, values: recipe.generation.tasks.map((t) => t.name) }];
}

/**
 * One point of the grid: one run (then its evaluations) at one level of every axis and one seed; in a
 * generation recipe, an expert's run ('expert') or the adapters generated for one held-out task ('generate').
 */
export interface StudyCellPlan {
  kind: 'run' | 'expert' | 'generate';
  /** Stable across restarts and re-expansions: the axis labels and the seed. */
  key: string;
  position: number;
  /** Axis name -> the level's label. */
  levels: Record<string, string>;
  seed: number;
  config: RunConfigInput;
  data: StudyData | null;
}

/**
 * The grid: every combination of axis levels (the first axis varies slowest), times every seed. Each cell's
 * run config is checked whole with RunConfigSchema, so whatever shape RunConfig has, an axis path that it
 * does not know, or a value it refuses, is an error naming the cell and the field.
 */
export function expandGrid(recipe: StudyRecipe): StudyCellPlan[] {
  if (recipe.generation) return expandGeneration(recipe, recipe.generation);
  let combos: { levels: Record<string, string>; sets: [string, unknown][] }[] = [{ levels: {}, sets: [] }];
  for (const axis of recipe.axes) {
    combos = combos.flatMap((combo) =>
      axis.values.map((value, i) => ({
        levels: { ...combo.levels, [axis.name]: axisLabel(axis, i) },
        sets: [...combo.sets, ...(axis.path ? [[axis.path, value] as [string, unknown]] : Object.entries(value as Record<string, unknown>))],
      })),
    );
  }
  const cells: StudyCellPlan[] = [];
  for (const combo of combos) {
    for (const seed of recipe.seeds) {
      let config: Record<string, unknown> = setPath(recipe.base, 'training.seed', seed);
      let data: Record<string, unknown> | null = recipe.data ? { ...recipe.data } : null;
      for (const [dotted, value] of combo.sets) {
        if (dotted.startsWith('data.')) data = setPath(data!, dotted.slice('data.'.length), value);
        else config = setPath(config, dotted, value);
      }
      const key = [...Object.entries(combo.levels).map(([k, v]) => `${k}=${v}`), `seed=${seed}`].join(' ');
      const name = typeof config.name === 'string' && config.name ? config.name : recipe.name;
      // The base may hold the sections of every method an axis names: each cell keeps its own method's.
      config = migrateStoredRunConfig({ ...config, name: `${name} ${key}`.slice(0, 200) }) as Record<string, unknown>;
      const parsedConfig = RunConfigSchema.safeParse(config);
      if (!parsedConfig.success) {
        const issues = parsedConfig.error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message }));
        throw new WorkbenchError('invalid_input', `Invalid run config for cell "${key}": ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, {
          cell: key,
          issues,
        });
      }
      const otherMethodsSection = (p: string) =>
        (methodSettingsKeys as readonly string[]).includes(p.split('.')[0]!) && !hasPath(parsedConfig.data, p.split('.')[0]!);
      const unknownPath = combo.sets.map(([p]) => p).find((p) => !p.startsWith('data.') && !otherMethodsSection(p) && !hasPath(parsedConfig.data, p));
      if (unknownPath) {
        throw new WorkbenchError('invalid_input', `Invalid axis path "${unknownPath}" for cell "${key}": the run config has no such field.`, {
          cell: key,
          field: unknownPath,
        });
      }
      cells.push({
        kind: 'run',
        key,
        position: cells.length,
        levels: combo.levels,
        seed,
        config: config as RunConfigInput,
        data: data && validate(StudyDataSchema, data, `data of cell "${key}"`),
      });
    }
  }
  return cells;
}

/** The experts (every task, every seed) first, then one generation cell per held-out task and seed. */
function expandGeneration(recipe: StudyRecipe, generation: StudyGeneration): StudyCellPlan[] {
  const cells: StudyCellPlan[] = [];
  const name = typeof recipe.base.name === 'string' && recipe.base.name ? recipe.base.name : recipe.name;
  for (const kind of ['expert', 'generate'] as const) {
    for (const task of generation.tasks) {
      for (const seed of recipe.seeds) {
        const key = kind === 'expert' ? expertCellKey(task.name, seed) : `${GENERATION_AXIS}=${task.name} seed=${seed}`;
        const config = { ...setPath(recipe.base, 'training.seed', seed), name: `${name} ${key}`.slice(0, 200) };
        const parsed = RunConfigSchema.safeParse(config);
        if (!parsed.success) {
          const issues = parsed.error.issues.map((issue) => ({ path: `base.${issue.path.join('.')}`, message: issue.message }));
          throw new WorkbenchError('invalid_input', `Invalid run config for cell "${key}": ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, {
            cell: key,
            issues,
          });
        }
        cells.push({
          kind,
          key,
          position: cells.length,
          levels: { [kind === 'expert' ? EXPERT_LEVEL : GENERATION_AXIS]: task.name },
          seed,
          config: config as RunConfigInput,
          data: { ...task.data, heldOut: task.data.heldOut ?? DEFAULT_HELD_OUT_EVERY },
        });
      }
    }
  }
  return cells;
}

/** The key of the expert cell trained on `task` with `seed` (a generation cell's bank and oracle). */
export const expertCellKey = (task: string, seed: number) => `${EXPERT_LEVEL}=${task} seed=${seed}`;

/** zod drops keys it does not know: a path that is not in the parsed config would silently do nothing. */
function hasPath(object: unknown, dotted: string): boolean {
  let at: unknown = object;
  for (const part of dotted.split('.')) {
    if (at === null || typeof at !== 'object' || !(part in at)) return false;
    at = (at as Record<string, unknown>)[part];
  }
  return true;
}

// ---- The API's view of studies ----

export const studyStatuses = ['queued', 'running', 'completed', 'failed', 'stopped', 'interrupted'] as const;
export const StudyStatusSchema = z.enum(studyStatuses);
export type StudyStatus = z.infer<typeof StudyStatusSchema>;

export const cellStatuses = ['pending', 'training', 'evaluating', 'completed', 'failed'] as const;

export const StudyCellSchema = z.object({
  key: z.string(),
  position: z.number().int(),
  levels: z.record(z.string(), z.string()),
  seed: z.number().int(),
  status: z.enum(cellStatuses),
  runId: z.string().nullable(),
  /** Evaluation id in the recipe -> the stored evaluation's id. */
  evaluations: z.record(z.string(), z.string()),
  error: z.string().nullable(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
});
export type StudyCell = z.infer<typeof StudyCellSchema>;

export const StudyProgressSchema = z.object({
  cellsDone: z.number().int(),
  cellsTotal: z.number().int(),
  /** The cell being worked on, and what of it. */
  current: z
    .object({
      key: z.string(),
      phase: z.enum(['training', 'evaluating']),
      step: z.number().int().nullable(),
      maxSteps: z.number().int().nullable(),
      evaluation: z.string().nullable(),
    })
    .nullable(),
  /** From the mean time of the cells finished so far; null before the first. */
  etaSeconds: z.number().nullable(),
});
export type StudyProgress = z.infer<typeof StudyProgressSchema>;

export const StudySchema = z.object({
  id: z.string(),
  name: z.string(),
  title: z.string(),
  status: StudyStatusSchema,
  /** The recipe file it came from, when it came from one. */
  source: z.string().nullable(),
  /** As run: variables replaced and scaled. */
  recipe: StudyRecipeSchema,
  progress: StudyProgressSchema,
  error: z.string().nullable(),
  createdAt: z.string(),
  finishedAt: z.string().nullable(),
});
export type Study = z.infer<typeof StudySchema>;

export const StudyScaleSchema = z.object({
  steps: z.number().int().min(1).optional(),
  rows: z.number().int().min(1).optional(),
  model: z.string().min(1).optional(),
  seeds: z.array(z.number().int().min(0)).min(1).optional(),
  backend: BackendChoiceSchema.optional(),
});

/**
 * studies.start: a recipe (checked with its variables replaced: errors name the field), sized by `scale`.
 * The same grid (after variables and scale) takes up its newest study instead of starting over: an
 * unfinished one continues, a completed one is redrawn with the recipe's figures (unless `fresh`).
 */
export const StudyStartRequestSchema = z.object({
  recipe: z.record(z.string(), z.unknown()),
  variables: z.record(z.string(), z.string()).default({}),
  scale: StudyScaleSchema.default({}),
  source: z.string().min(1).optional(),
  /** A new study even where one of the same grid exists (to measure again, e.g. after a code change). */
  fresh: z.boolean().default(false),
});
export type StudyStartRequestInput = z.input<typeof StudyStartRequestSchema>;

/** A recipe shipped in resources/studies/. */
export const BuiltInRecipeSchema = z.object({
  file: z.string(),
  name: z.string(),
  title: z.string(),
  redraws: z.string().nullable(),
  /** The recipe as written (variables not replaced). */
  recipe: z.record(z.string(), z.unknown()),
  /** Variables it uses ("data"), so the form can ask for them. */
  variables: z.array(z.string()),
});
export type BuiltInRecipe = z.infer<typeof BuiltInRecipeSchema>;

export function recipeVariables(raw: unknown): string[] {
  const found = new Set<string>();
  const visit = (v: unknown) => {
    if (typeof v === 'string') for (const m of v.matchAll(/\$\{(\w+)\}/g)) found.add(m[1]!);
    else if (Array.isArray(v)) v.forEach(visit);
    else if (v && typeof v === 'object') Object.values(v).forEach(visit);
  };
  visit(raw);
  return [...found].sort();
}
