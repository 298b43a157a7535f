// Messages between a training run's lead worker and its replicas (train/data-parallel.ts,
// train/replica.ts): worker threads of the same engine that each compute the gradients of a share of
// every batch. Both sides validate what they receive, as on every other boundary.
import { z } from 'zod';
import { backendNames, RunConfigSchema } from '../../src-shared/config.ts';
import { WorkbenchErrorSchema } from '../../src-shared/errors.ts';

// Typed as Float32Array<ArrayBufferLike>, as tensors' data() gives them.
const Float32ArraySchema = z.custom<Float32Array>((value) => value instanceof Float32Array, 'expected a Float32Array');
const RowRangeSchema = z.tuple([z.number().int().min(0), z.number().int().min(0)]);

export const ReplicaInitSchema = z.object({
  type: z.literal('init'),
  modelDir: z.string(),
  /** The backend the lead runs on (never `auto`: every worker must compute alike). */
  backend: z.enum(backendNames),
  config: RunConfigSchema,
  /** The training prompts the lead's adapter was fitted on (AdapterModel.fit), when the method fits. */
  fitPrompts: z.array(z.array(z.number().int())).nullable(),
  taskMixture: z.array(z.number()).nullable(),
  microBatchSize: z.number().int().min(1),
  recompute: z.boolean(),
  logitsChunkTokens: z.number().int().min(1),
  wasmPacking: z.enum(['cached', 'per-call']),
});
export type ReplicaInit = z.infer<typeof ReplicaInitSchema>;

export const ReplicaStepSchema = z.object({
  type: z.literal('step'),
  batch: z.object({
    inputIds: z.custom<Int32Array>((value) => value instanceof Int32Array, 'expected an Int32Array'),
    lossMask: Float32ArraySchema,
    batchSize: z.number().int().min(1),
    seqLen: z.number().int().min(1),
    tokenCount: z.number().int().min(0),
  }),
  rows: RowRangeSchema,
  prompts: z.array(z.array(z.number().int())).nullable(),
  /** The lead's trainable values at the start of the step, by parameter name. */
  values: z.map(z.string(), Float32ArraySchema),
  /** The random streams' positions this replica draws from (the lead's, offset per replica). */
  random: z.record(z.string(), z.number()),
  task: z.number().int().min(0).nullable(),
});
export type ReplicaStep = z.infer<typeof ReplicaStepSchema>;

export const LeadToReplicaSchema = z.discriminatedUnion('type', [ReplicaInitSchema, ReplicaStepSchema]);
export type LeadToReplica = z.infer<typeof LeadToReplicaSchema>;

export const ReplicaToLeadSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('ready') }),
  z.object({
    type: z.literal('gradients'),
    grads: z.map(z.string(), Float32ArraySchema),
    task: z.number(),
    total: z.number(),
    terms: z.record(z.string(), z.number()),
  }),
  z.object({ type: z.literal('failed'), error: WorkbenchErrorSchema }),
]);
export type ReplicaToLead = z.infer<typeof ReplicaToLeadSchema>;
