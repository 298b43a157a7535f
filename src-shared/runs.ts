// Runs, metrics, checkpoints and adapters as the API returns them.
import { z } from 'zod';
import { backendNames, RunConfigSchema } from './config.ts';

export const runStatuses = ['queued', 'running', 'completed', 'failed', 'stopped', 'interrupted'] as const;
export const RunStatusSchema = z.enum(runStatuses);
export type RunStatus = z.infer<typeof RunStatusSchema>;

/** Runs in these states can continue from their last checkpoint. */
export const resumableStatuses: readonly RunStatus[] = ['interrupted', 'stopped', 'failed'];

export const BackendInfoSchema = z.object({
  /** A tfjs backend, or 'pytorch' for the PyTorch engine (its adapter names the torch device). */
  name: z.enum([...backendNames, 'pytorch']),
  /** What actually computes: GPU adapter name, "XNNPACK (wasm SIMD)", "JavaScript", … */
  adapter: z.string(),
});
export type BackendInfo = z.infer<typeof BackendInfoSchema>;

export const ProgressSchema = z.object({
  step: z.number().int().min(0),
  maxSteps: z.number().int().min(1),
  tokensPerSecond: z.number().min(0),
  stepTimeMs: z.number().min(0),
  etaSeconds: z.number().min(0),
});
export type Progress = z.infer<typeof ProgressSchema>;

export const RunSchema = z.object({
  id: z.string(),
  name: z.string(),
  config: RunConfigSchema,
  status: RunStatusSchema,
  backend: BackendInfoSchema.nullable(),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  error: z.string().nullable(),
  progress: ProgressSchema.nullable(),
  lastCheckpointStep: z.number().int().nullable(),
  adapterId: z.string().nullable(),
});
export type Run = z.infer<typeof RunSchema>;

/** Metric names: train/loss, val/loss, lr, grad_norm, tokens_per_s, step_time_ms (more per method later). */
export const MetricPointSchema = z.object({
  step: z.number().int().min(0),
  name: z.string().min(1),
  value: z.number(),
  time: z.number(),
});
export type MetricPoint = z.infer<typeof MetricPointSchema>;

export const AdapterSchema = z.object({
  id: z.string(),
  runId: z.string(),
  name: z.string(),
  method: z.string(),
  baseModel: z.string(),
  path: z.string(),
  step: z.number().int(),
  trainableParams: z.number().int(),
  createdAt: z.string(),
  /** The task in words (SG-LoRA's bank weights experts by it); null until someone describes it. */
  description: z.string().nullable(),
});
export type Adapter = z.infer<typeof AdapterSchema>;

/**
 * peft: a folder PEFT loads as it is (adapter_config.json + adapter_model.safetensors): the adapter
 * itself where PEFT can represent it, else its flattened plain LoRA with what flattening costs (SeLoRA,
 * a multi-task bias-aware run), else (Houlsby, BitFit, full fine-tuning: no PEFT type) the native
 * tensors with the sidecar only; workbench: the native adapter as the workbench trained it, with
 * adapter_config.json only where PEFT represents it as it is; flattened: the flattened plain LoRA;
 * merged: the adapter folded into the base weights, a full Hugging Face model folder.
 */
export const exportFormats = ['peft', 'workbench', 'flattened', 'merged'] as const;
export type ExportFormat = (typeof exportFormats)[number];

/** Loaders an export was checked with: the workbench's own (always), real PEFT (when the Python environment exists). */
export const exportVerifiers = ['workbench', 'peft'] as const;

export const ExportReportSchema = z.object({
  outDir: z.string(),
  files: z.array(z.object({ name: z.string(), bytes: z.number().int() })),
  /** Verification, after the files were written and read back. */
  verification: z.object({
    /** max |logits(exported adapter) - logits(trained adapter)|: must be ~0. */
    maxAbsDiffToTrained: z.number(),
    /** max |logits(exported adapter) - logits(base model)|: must be clearly > 0. */
    maxAbsDiffToBase: z.number(),
    passed: z.boolean(),
    /** What read the written files back: the workbench's loader; 'peft' is added where real PEFT loaded them too. */
    verifiedWith: z.array(z.enum(exportVerifiers)).optional(),
  }),
  /** False for methods PEFT has no adapter type for (Houlsby, BitFit, full fine-tuning): no adapter_config.json is written. */
  peftLoadable: z.boolean().optional(),
  /** What the folder can be loaded with, when that is not PEFT. */
  note: z.string().optional(),
  /** The flattened form was written (format 'flattened', or 'peft' of an adapter PEFT cannot represent): what flattening costs (SeLoRA at the mean semantic vector; a multi-task run's mixture) on the verification probe. */
  flattening: z.object({ fromMethod: z.string(), maxAbsLogitDiffToNative: z.number() }).optional(),
});
export type ExportReport = z.infer<typeof ExportReportSchema>;
