// Messages between the main process (RunManager) and a training worker. Both sides validate
// every message with these schemas: the worker owns tensors, the main process owns the database.
import { z } from 'zod';
import { RunConfigSchema } from './config.ts';
import { BackendInfoSchema, ExportReportSchema, MetricPointSchema, ProgressSchema } from './runs.ts';
import { WorkbenchErrorSchema } from './errors.ts';
import { EvalJobSchema, EvalResultSchema } from './eval.ts';

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
  backend: RunConfigSchema.shape.backend,
});
export type ExportJob = z.infer<typeof ExportJobSchema>;

export const MainToWorkerSchema = z.discriminatedUnion('type', [
  TrainJobSchema,
  ExportJobSchema,
  EvalJobSchema,
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
]);
export type WorkerToMain = z.infer<typeof WorkerToMainSchema>;
