// Messages between the main process (RunManager) and a training worker. Both sides validate
// every message with these schemas: the worker owns tensors, the main process owns the database.
import { z } from 'zod';
import { BackendChoiceSchema, engineNames, LoraSettingsSchema, RunConfigSchema } from './config.ts';
import { BackendInfoSchema, ExportReportSchema, exportFormats, MetricPointSchema, ProgressSchema } from './runs.ts';
import { errorCodes, WorkbenchErrorSchema } from './errors.ts';
import { EvalJobSchema, EvalResultSchema } from './eval.ts';
import { ColumnMappingSchema, DatasetPreviewSchema, datasetFormats } from './datasets.ts';
import {
  GenerateResultSchema,
  ModelImportRequestSchema,
  ModelImportResultSchema,
  ModelInspectionSchema,
  SamplingSettingsSchema,
  torchAccelerators,
} from './models.ts';
import { AdapterGenerateRequestSchema } from './sg-lora.ts';

export const TrainJobSchema = z.object({
  type: z.literal('train'),
  runId: z.string(),
  config: RunConfigSchema,
  /** Resolved absolute paths (main resolves `default` / `sample` to resources/). */
  modelDir: z.string(),
  datasetPath: z.string(),
  /** The run's folder: checkpoints/ and adapter/ are written inside it. */
  runDir: z.string(),
  /** Continue from this checkpoint folder (adapter + optimizer state + step). */
  resumeFrom: z.string().nullable(),
});
export type TrainJob = z.infer<typeof TrainJobSchema>;

export const ExportJobSchema = z.object({
  type: z.literal('export'),
  /** A finished adapter folder or a checkpoint folder, as the worker wrote it. */
  sourceDir: z.string(),
  modelDir: z.string(),
  outDir: z.string(),
  backend: BackendChoiceSchema,
  /** See ExportRequestSchema in api.ts. */
  format: z.enum(exportFormats).default('peft'),
});
export type ExportJob = z.infer<typeof ExportJobSchema>;

/** Reads a model folder's config and safetensors headers (not its weights) and estimates a run's memory. */
export const InspectModelJobSchema = z.object({
  type: z.literal('inspect-model'),
  modelDir: z.string(),
  batchSize: z.number().int().min(1),
  maxSeqLen: z.number().int().min(1),
  r: z.number().int().min(1),
  /** The engine and accelerator the estimate is for (ModelInspectRequest); absent: tfjs. */
  engine: z.enum(engineNames).optional(),
  accelerator: z.enum(torchAccelerators).optional(),
});
export type InspectModelJob = z.infer<typeof InspectModelJobSchema>;

/** Converts a llama2.c checkpoint into a Hugging Face Llama folder (paths resolved by the main process), then inspects it. */
export const ImportModelJobSchema = z.object({
  type: z.literal('import-model'),
  request: ModelImportRequestSchema,
  batchSize: z.number().int().min(1),
  maxSeqLen: z.number().int().min(1),
  r: z.number().int().min(1),
});
export type ImportModelJob = z.infer<typeof ImportModelJobSchema>;

/** One prompt through the base model and, when adapterDir is set, through the adapter, with the same sampling. */
export const GenerateJobSchema = z.object({
  type: z.literal('generate'),
  modelDir: z.string(),
  adapterDir: z.string().nullable(),
  prompt: z.string(),
  useChatTemplate: z.boolean(),
  sampling: SamplingSettingsSchema,
  backend: BackendChoiceSchema,
});
export type GenerateJob = z.infer<typeof GenerateJobSchema>;

/** Reads a user's JSONL/CSV file: its columns, first rows and bad rows; with `normalizeTo`, also writes the mapped prompt/completion JSONL. */
export const InspectDatasetJobSchema = z.object({
  type: z.literal('inspect-dataset'),
  path: z.string(),
  format: z.enum(datasetFormats).optional(),
  mapping: ColumnMappingSchema.optional(),
  rows: z.number().int().min(1),
  normalizeTo: z.string().nullable(),
});
export type InspectDatasetJob = z.infer<typeof InspectDatasetJobSchema>;

/** SG-LoRA: the experts' adapter folders and descriptions, resolved by the main process. */
export const GenerateAdapterJobSchema = z.object({
  type: z.literal('generate-adapter'),
  modelDir: z.string(),
  experts: z.array(z.object({ adapterId: z.string(), name: z.string(), dir: z.string(), description: z.string() })).min(1),
  request: AdapterGenerateRequestSchema,
  /** The generation record's run id, written into the adapter's sidecar as training writes its run's. */
  runId: z.string().default('sg-lora'),
  /** The generated adapter is written here in the workbench's native layout (as training writes adapter/). */
  outDir: z.string(),
});
export type GenerateAdapterJob = z.infer<typeof GenerateAdapterJobSchema>;

/** Pre-flight of a run, before its row exists: the model folder inspected, the target modules looked up, the dataset read. */
export const CheckRunJobSchema = z.object({
  type: z.literal('check-run'),
  config: RunConfigSchema,
  modelDir: z.string(),
  datasetPath: z.string(),
});
export type CheckRunJob = z.infer<typeof CheckRunJobSchema>;
/** What a pre-flight found wrong, each with the form field to mark. */
export const RunProblemSchema = z.object({ field: z.string(), code: z.enum(errorCodes), message: z.string() });
export type RunProblem = z.infer<typeof RunProblemSchema>;

/** The quick built-in evaluation's corpus: the rows a run held out (its seed and validation fraction), as {"text"} JSONL. */
export const WriteHeldoutJobSchema = z.object({
  type: z.literal('write-heldout'),
  datasetPath: z.string(),
  seed: z.number().int().min(0),
  fraction: z.number().min(0).max(1),
  outFile: z.string(),
});
export type WriteHeldoutJob = z.infer<typeof WriteHeldoutJobSchema>;
/** A PEFT LoRA folder made elsewhere, checked against the base model and rewritten as a workbench adapter at outDir. */
export const ImportAdapterJobSchema = z.object({
  type: z.literal('import-adapter'),
  sourceDir: z.string(),
  modelDir: z.string(),
  /** The base model as the user named it ('default' or a path): the recorded run's config.model. */
  baseModel: z.string(),
  name: z.string(),
  runId: z.string(),
  outDir: z.string(),
  backend: BackendChoiceSchema,
});
export type ImportAdapterJob = z.infer<typeof ImportAdapterJobSchema>;

/** Where the pytorch engine reads its data plan, in its run folder's engine/ and in a job folder. */
export const DATA_PLAN_FILE = 'data-plan.json';
/**
 * The pytorch engine's data plan (src-worker/data/data-plan.ts: every batch, tokenized by the tfjs engine's
 * own data code), computed in a worker so that the main process loads neither tokenizers nor tfjs.
 */
export const WriteDataPlanJobSchema = z.object({
  type: z.literal('write-data-plan'),
  config: RunConfigSchema,
  modelDir: z.string(),
  datasetPath: z.string(),
  outFile: z.string(),
});
export type WriteDataPlanJob = z.infer<typeof WriteDataPlanJobSchema>;

export const MainToWorkerSchema = z.discriminatedUnion('type', [
  TrainJobSchema,
  ExportJobSchema,
  EvalJobSchema,
  InspectModelJobSchema,
  ImportModelJobSchema,
  GenerateJobSchema,
  InspectDatasetJobSchema,
  GenerateAdapterJobSchema,
  CheckRunJobSchema,
  WriteHeldoutJobSchema,
  ImportAdapterJobSchema,
  WriteDataPlanJobSchema,
  z.object({ type: z.literal('stop') }),
]);
export type MainToWorker = z.infer<typeof MainToWorkerSchema>;

export const WorkerToMainSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('started'), backend: BackendInfoSchema, trainableParams: z.number().int(), totalParams: z.number().int() }),
  z.object({ type: z.literal('progress'), progress: ProgressSchema }),
  z.object({ type: z.literal('metrics'), points: z.array(MetricPointSchema) }),
  z.object({ type: z.literal('checkpoint'), step: z.number().int(), dir: z.string() }),
  z.object({ type: z.literal('log'), level: z.enum(['info', 'warn', 'error']), message: z.string() }),
  z.object({
    type: z.literal('trained'),
    /** Folder holding the final adapter in the workbench's native layout. */
    adapterDir: z.string(),
    step: z.number().int(),
    trainableParams: z.number().int(),
  }),
  z.object({ type: z.literal('stopped'), step: z.number().int() }),
  z.object({ type: z.literal('exported'), report: ExportReportSchema }),
  z.object({ type: z.literal('failed'), error: WorkbenchErrorSchema }),
  /** An eval job's progress: items scored so far out of all it will score. */
  z.object({ type: z.literal('eval-progress'), done: z.number().int().min(0), total: z.number().int().min(0) }),
  z.object({ type: z.literal('evaluated'), result: EvalResultSchema }),
  z.object({ type: z.literal('model-inspected'), inspection: ModelInspectionSchema }),
  z.object({ type: z.literal('model-imported'), result: ModelImportResultSchema }),
  z.object({ type: z.literal('generated'), result: GenerateResultSchema }),
  /** sha256 and rowCount are of what was read (the whole file when registering, its head for a preview); `normalized` counts the rows written when normalizeTo was set. */
  z.object({ type: z.literal('dataset-inspected'), preview: DatasetPreviewSchema, sha256: z.string(), normalized: z.number().int().nullable() }),
  z.object({ type: z.literal('run-checked'), problems: z.array(RunProblemSchema) }),
  z.object({ type: z.literal('heldout-written'), rows: z.number().int().min(1) }),
  z.object({ type: z.literal('data-plan-written'), steps: z.number().int().min(0) }),
  z.object({
    type: z.literal('adapter-generated'),
    adapterDir: z.string(),
    trainableParams: z.number().int(),
    experts: z.array(z.object({ adapterId: z.string(), cosine: z.number(), weight: z.number() })),
    truncationError: z.number().min(0),
    candidates: z.array(z.object({ distanceToMerge: z.number().min(0), chosen: z.boolean() })).optional(),
  }),
  /** The imported adapter's folder and the LoRA settings read from its adapter_config.json. */
  z.object({
    type: z.literal('adapter-imported'),
    adapterDir: z.string(),
    trainableParams: z.number().int(),
    settings: LoraSettingsSchema,
    warnings: z.array(z.string()),
  }),
]);
export type WorkerToMain = z.infer<typeof WorkerToMainSchema>;
