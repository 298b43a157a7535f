// WorkbenchApi: the one contract between the view and the services. Every front door (Electron IPC,
// the loopback WebSocket, the CLI) calls one implementation of it; both ends validate with apiSpec.
import { z } from 'zod';
import { BackendChoiceSchema, LoraSettingsSchema, methodIds, methodSettingsKeys, RunConfigSchema } from './config.ts';
import { AdapterSchema, ExportReportSchema, exportFormats, MetricPointSchema, RunSchema } from './runs.ts';
import { EvalResultSchema, EvalStartRequestSchema, EvaluationSchema } from './eval.ts';
import { DatasetPreviewRequestSchema, DatasetPreviewSchema, DatasetRegisterRequestSchema, DatasetSchema } from './datasets.ts';
import {
  GenerateRequestSchema,
  GenerateResultSchema,
  ModelImportRequestSchema,
  ModelImportResultSchema,
  ModelInspectionSchema,
  ModelInspectRequestSchema,
} from './models.ts';
import { AdapterDescribeRequestSchema, AdapterGenerateReportSchema, AdapterGenerateRequestSchema } from './sg-lora.ts';
import { BuiltInRecipeSchema, StudySchema, StudyStartRequestSchema } from './studies.ts';
import { StudyDetailSchema } from './study-figures.ts';
import { validate, WorkbenchError } from './errors.ts';
import type { MethodDescriptor } from './methods.ts';

export const SystemInfoSchema = z.object({
  version: z.string(),
  mode: z.enum(['electron', 'browser', 'headless']),
  dataDir: z.string(),
  platform: z.string(),
  /** Backends whose packages are installed (whether each one runs is only known when a run starts). */
  installedBackends: z.array(z.enum(['tensorflow', 'webgpu', 'wasm', 'cpu'])),
});
export type SystemInfo = z.infer<typeof SystemInfoSchema>;

export const DataUsageSchema = z.object({
  dataDir: z.string(),
  bytes: z.number().int().min(0),
  /** The data folder's entries (runs, datasets, exports, the database…) with their sizes. */
  parts: z.array(z.object({ name: z.string(), bytes: z.number().int().min(0) })),
});
export type DataUsage = z.infer<typeof DataUsageSchema>;

/** A benchmark the workbench can download ("Get the data"), and where it is once downloaded and checked. */
export const BenchmarkStatusSchema = z.object({
  id: z.enum(['crows-pairs', 'stereoset', 'bbq', 'hotpotqa', 'qqp']),
  label: z.string(),
  /** The evals.start datasets key it fills. */
  datasetKey: z.enum(['crowsPairs', 'stereoSet', 'bbq', 'hotpotqa', 'qqp']),
  license: z.string(),
  /** The benchmark's home page. */
  source: z.string(),
  /** What part of the benchmark the files are. */
  note: z.string(),
  files: z.array(z.object({ name: z.string(), url: z.string(), bytes: z.number().int(), sha256: z.string() })),
  /** The file or folder to evaluate on; null until downloaded and checked. */
  path: z.string().nullable(),
});
export type BenchmarkStatus = z.infer<typeof BenchmarkStatusSchema>;

/** The quick built-in evaluation: perplexity on the rows the adapter's run held out (no adapter: the sample dataset's). */
export const QuickEvalRequestSchema = z.object({
  adapterId: z.string().min(1).optional(),
  backend: BackendChoiceSchema.optional(),
});
export type QuickEvalRequest = z.infer<typeof QuickEvalRequestSchema>;

/** The most a dropped file may hold: a call carries at most 16 MB of JSON (src-main/server). */
export const MAX_UPLOAD_CHARS = 15_000_000;
/** Browser mode's drop zone: a JSONL/CSV/TSV file's text, kept under <dataDir>/uploads/ so it can be previewed and registered by path. */
export const DatasetUploadRequestSchema = z.object({
  name: z.string().min(1).max(200),
  content: z.string().max(MAX_UPLOAD_CHARS, `A dropped file may hold at most ${MAX_UPLOAD_CHARS / 1e6} MB; give the path of a larger one instead.`),
});
export type DatasetUploadRequest = z.infer<typeof DatasetUploadRequestSchema>;

export const CatalogEntrySchema = z.object({
  id: z.string(),
  name: z.string(),
  path: z.string(),
  description: z.string(),
});
export type CatalogEntry = z.infer<typeof CatalogEntrySchema>;

const FieldDescriptorSchema = z.union([
  z.object({
    key: z.string(),
    label: z.string(),
    kind: z.enum(['int', 'number', 'boolean', 'string-list', 'text']),
    min: z.number().optional(),
    minExclusive: z.boolean().optional(),
    max: z.number().optional(),
    step: z.number().optional(),
    help: z.string(),
  }),
  /** A select over `options` (the setting's zod enum). */
  z.object({ key: z.string(), label: z.string(), kind: z.literal('choice'), options: z.array(z.string()).readonly(), help: z.string() }),
]);
export const MethodDescriptorSchema = z.object({
  id: z.enum(methodIds),
  label: z.string(),
  summary: z.string(),
  settingsKey: z.enum(methodSettingsKeys),
  fields: z.array(FieldDescriptorSchema),
  extends: z.enum(methodIds).optional(),
}) satisfies z.ZodType<MethodDescriptor>;

export const CatalogSchema = z.object({
  models: z.array(CatalogEntrySchema),
  datasets: z.array(CatalogEntrySchema),
  methods: z.array(MethodDescriptorSchema),
  defaults: RunConfigSchema,
});
export type Catalog = z.infer<typeof CatalogSchema>;

export const ExportRequestSchema = z
  .object({
    /** Export a finished adapter… */
    adapterId: z.string().optional(),
    /** …or a run's adapter, or its last checkpoint if it did not finish. */
    runId: z.string().optional(),
    /** An absolute path to a new or empty folder; defaults to <dataDir>/exports/<name>. */
    outDir: z.string().min(1).optional(),
    /** Write into a folder that already holds files, replacing those the export writes (the user confirmed it). */
    overwrite: z.boolean().default(false),
    /** See exportFormats in runs.ts. */
    format: z.enum(exportFormats).default('peft'),
  })
  .refine((r) => Boolean(r.adapterId) !== Boolean(r.runId), { message: 'give exactly one of adapterId or runId' });
export type ExportRequest = z.infer<typeof ExportRequestSchema>;
export type ExportRequestInput = z.input<typeof ExportRequestSchema>;

/** The pytorch engine's Python environment (`lora-workbench engine setup pytorch`), as the New run page shows it. */
export const PytorchEnvironmentRequestSchema = z.object({
  /** true: create it or bring it up to date (pip runs; each line it prints comes as an engine-setup event). false: only look. */
  setUp: z.boolean().default(false),
});
export const PytorchEnvironmentSchema = z.discriminatedUnion('ready', [
  z.object({
    ready: z.literal(true),
    dir: z.string(),
    python: z.string(),
    pythonVersion: z.string(),
    torch: z.string(),
    transformers: z.string().nullable(),
    peft: z.string().nullable(),
    accelerator: z.enum(['cuda', 'rocm', 'mps', 'cpu']),
    deviceName: z.string().nullable(),
    /** False when it was already up to date and nothing was installed. */
    installed: z.boolean(),
  }),
  /** Not set up (or torch does not import): `problem` says why. */
  z.object({ ready: z.literal(false), dir: z.string(), problem: z.string() }),
]);
export type PytorchEnvironment = z.infer<typeof PytorchEnvironmentSchema>;

export const RunEventSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('run'), run: RunSchema }),
  z.object({ kind: z.literal('metrics'), runId: z.string(), points: z.array(MetricPointSchema) }),
  z.object({ kind: z.literal('log'), runId: z.string(), level: z.enum(['info', 'warn', 'error']), message: z.string() }),
  /** An evaluation's status or progress (evaluation.progress: done/total) changed, or its worker logged a line. */
  z.object({
    kind: z.literal('eval'),
    evaluation: EvaluationSchema,
    log: z.object({ level: z.enum(['info', 'warn', 'error']), message: z.string() }).optional(),
  }),
  /** A progress line of the pytorch engine's set-up (engines.pytorch with setUp), as pip prints it. */
  z.object({ kind: z.literal('engine-setup'), engine: z.literal('pytorch'), line: z.string() }),
]);
export type RunEvent = z.infer<typeof RunEventSchema>;

/**
 * adapters.import: a PEFT LoRA folder trained elsewhere (adapter_config.json + adapter_model.safetensors),
 * checked against `baseModel` ('default' or a model folder): key names, shapes, target_modules. Other PEFT
 * types, DoRA, modules_to_save, trained biases and per-module ranks are refused with the reason.
 */
export const AdapterImportRequestSchema = z.object({
  dir: z.string().min(1, 'name the adapter folder'),
  baseModel: z.string().min(1, 'name the base model'),
  /** Defaults to the folder's name. */
  name: z.string().max(200).optional(),
  backend: BackendChoiceSchema.optional(),
});
export type AdapterImportRequest = z.input<typeof AdapterImportRequestSchema>;

export const AdapterImportResultSchema = z.object({
  adapter: AdapterSchema,
  settings: LoraSettingsSchema,
  /** What the import noticed but did not refuse: a different base model named in adapter_config.json, an adapter that changes nothing. */
  warnings: z.array(z.string()),
});
export type AdapterImportResult = z.infer<typeof AdapterImportResultSchema>;

const Id = z.string().min(1);
const None = z.undefined();
// The calls that answer a list (of what remains, for the deletions).
const Runs = z.array(RunSchema);
const MetricPoints = z.array(MetricPointSchema);
const Adapters = z.array(AdapterSchema);
const Datasets = z.array(DatasetSchema);
const Evaluations = z.array(EvaluationSchema);
const Studies = z.array(StudySchema);
const Recipes = z.array(BuiltInRecipeSchema);
const BenchmarkStatuses = z.array(BenchmarkStatusSchema);
/** Where browser mode stored a dropped file. */
const UploadedFileSchema = z.object({ path: z.string() });

/** Every call: its wire name, what it takes, what it returns. */
export const apiSpec = {
  'system.info': { input: None, output: SystemInfoSchema },
  'catalog.list': { input: None, output: CatalogSchema },
  'runs.list': { input: None, output: Runs },
  'runs.get': { input: Id, output: RunSchema },
  'runs.start': { input: RunConfigSchema, output: RunSchema },
  'runs.stop': { input: Id, output: RunSchema },
  'runs.resume': { input: Id, output: RunSchema },
  'runs.metrics': { input: Id, output: MetricPoints },
  'adapters.list': { input: None, output: Adapters },
  /** Sets the task description SG-LoRA compares against. */
  'adapters.describe': { input: AdapterDescribeRequestSchema, output: AdapterSchema },
  /** SG-LoRA: a new adapter from the bank and a task description, without training. */
  'adapters.generate': { input: AdapterGenerateRequestSchema, output: AdapterGenerateReportSchema },
  /** Adds a PEFT LoRA folder trained elsewhere to the library (AdapterImportRequestSchema). */
  'adapters.import': { input: AdapterImportRequestSchema, output: AdapterImportResultSchema },
  'models.inspect': { input: ModelInspectRequestSchema, output: ModelInspectionSchema },
  /** Converts a llama2.c checkpoint into a Hugging Face Llama folder and inspects it. */
  'models.import': { input: ModelImportRequestSchema, output: ModelImportResultSchema },
  'playground.generate': { input: GenerateRequestSchema, output: GenerateResultSchema },
  'datasets.preview': { input: DatasetPreviewRequestSchema, output: DatasetPreviewSchema },
  'datasets.register': { input: DatasetRegisterRequestSchema, output: DatasetSchema },
  'datasets.list': { input: None, output: Datasets },
  'datasets.remove': { input: Id, output: Datasets },
  'exports.create': { input: ExportRequestSchema, output: ExportReportSchema },
  'evals.start': { input: EvalStartRequestSchema, output: EvaluationSchema },
  'evals.list': { input: None, output: Evaluations },
  'evals.get': { input: Id, output: EvaluationSchema },
  'evals.stop': { input: Id, output: EvaluationSchema },
  /** The whole stored result of a completed evaluation, with every item (for drill-downs). */
  'evals.result': { input: Id, output: EvalResultSchema },
  // Studies (src-shared/studies.ts): a recipe's grid of ordinary runs and evaluations, and its figures.
  'studies.list': { input: None, output: Studies },
  /** The study, its cells and its figure data (mean and spread over seeds) from the stored results. */
  'studies.get': { input: Id, output: StudyDetailSchema },
  /** Starts a recipe, or continues its unfinished study: finished cells are not redone. */
  'studies.start': { input: StudyStartRequestSchema, output: StudySchema },
  'studies.resume': { input: Id, output: StudySchema },
  'studies.stop': { input: Id, output: StudySchema },
  /** The recipes shipped in resources/studies. */
  'studies.recipes': { input: None, output: Recipes },
  // Deleting what piles up (issue 15): each answers the list that remains.
  /** A run with its folder (checkpoints, final adapter), metrics and adapters; its evaluations stay, without it. */
  'runs.delete': { input: Id, output: Runs },
  'adapters.delete': { input: Id, output: Adapters },
  'evals.delete': { input: Id, output: Evaluations },
  /** How much room the data folder takes, largest part first. */
  'system.usage': { input: None, output: DataUsageSchema },
  /** Starts the quick built-in evaluation (with an adapter: the base model first, then the adapter). */
  'evals.quick': { input: QuickEvalRequestSchema, output: Evaluations },
  /** The benchmarks "Get the data" offers, with their sources, licenses and recorded SHA-256. */
  'benchmarks.list': { input: None, output: BenchmarkStatuses },
  /** Downloads a benchmark from its pinned source, checks every file's SHA-256 and keeps it under <dataDir>/benchmarks/. */
  'benchmarks.fetch': { input: Id, output: BenchmarkStatusSchema },
  /** Browser mode's drop zone: stores a dropped dataset file and answers its path. */
  'datasets.upload': { input: DatasetUploadRequestSchema, output: UploadedFileSchema },
  /** The pytorch engine's environment: whether it is ready (torch version, accelerator), or sets it up. */
  'engines.pytorch': { input: PytorchEnvironmentRequestSchema, output: PytorchEnvironmentSchema },
} as const;
export type ApiMethod = keyof typeof apiSpec;
export const apiMethods = Object.keys(apiSpec) as ApiMethod[];

type Spec = typeof apiSpec;
type InputOf<M extends ApiMethod> = z.input<Spec[M]['input']>;
type OutputOf<M extends ApiMethod> = z.output<Spec[M]['output']>;
type Call<M extends ApiMethod> = undefined extends InputOf<M> ? (input?: InputOf<M>) => Promise<OutputOf<M>> : (input: InputOf<M>) => Promise<OutputOf<M>>;

type Namespaces = { [M in ApiMethod as M extends `${infer N}.${string}` ? N : never]: true };
type NamespaceApi<N extends string> = {
  [M in ApiMethod as M extends `${N}.${infer F}` ? F : never]: Call<M>;
};
export type RunEventListener = (event: RunEvent) => void;

/** The typed API as the renderer sees it on window.workbench. */
export type WorkbenchApi = { [N in keyof Namespaces & string]: NamespaceApi<N> } & {
  /** Subscribes to run and evaluation status, progress, metric and log events; returns the unsubscribe function. */
  onRunEvent(listener: RunEventListener): () => void;
};

/** Calls `method` on an implementation after validating the input; validates the output too. */
export async function dispatch(api: WorkbenchApi, method: string, input: unknown): Promise<unknown> {
  // Own properties only: `in` also finds toString, __proto__ and the rest of Object.prototype.
  if (!Object.hasOwn(apiSpec, method)) throw new WorkbenchError('invalid_input', `Unknown API method "${method}"`);
  const spec = apiSpec[method as ApiMethod];
  const parsedInput = validate(spec.input as z.ZodType, input, `${method} input`);
  const [namespace, name] = method.split('.') as [string, string];
  const target = (api as unknown as Record<string, Record<string, (x: unknown) => Promise<unknown>>>)[namespace]!;
  const output = await target[name]!.call(target, parsedInput);
  return validate(spec.output as z.ZodType, output, `${method} output`);
}

/**
 * Builds a WorkbenchApi over a transport: `invoke` sends one call, `subscribe` delivers raw events.
 * Inputs and outputs are validated on this side as well, so a bad message never reaches a component.
 */
export function createApiClient(
  invoke: (method: ApiMethod, input: unknown) => Promise<unknown>,
  subscribe: (listener: (event: unknown) => void) => () => void,
): WorkbenchApi {
  const api: Record<string, unknown> = {
    onRunEvent(listener: RunEventListener) {
      return subscribe((raw) => listener(validate(RunEventSchema, raw, 'run event')));
    },
  };
  for (const method of apiMethods) {
    const [namespace, name] = method.split('.') as [string, string];
    const group = (api[namespace] ??= {}) as Record<string, unknown>;
    const spec = apiSpec[method];
    group[name] = async (input: unknown) => {
      const sent = validate(spec.input as z.ZodType, input, `${method} input`);
      return validate(spec.output as z.ZodType, await invoke(method, sent), `${method} output`);
    };
  }
  return api as unknown as WorkbenchApi;
}
