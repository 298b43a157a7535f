// SG-LoRA (METHODS.md section 5): a new adapter made without training, from a bank of expert
// adapters with task descriptions and the new task's description.
import { z } from 'zod';
import { BackendChoiceSchema } from './config.ts';

export const sgLoraGenerators = ['semantic-merge', 'cvae'] as const;

export const AdapterGenerateRequestSchema = z.object({
  name: z.string().min(1).max(200),
  /** The new task, in words; embedded by the semantic encoder and compared with each expert's description. */
  description: z.string().min(1).max(5000),
  /** The bank: library adapters that share one base model and have a task description. Omitted: every such adapter. */
  expertIds: z.array(z.string().min(1)).min(1).optional(),
  generator: z.enum(sgLoraGenerators).default('semantic-merge'),
  /** Keep the k most similar experts. */
  topK: z.number().int().min(1).max(64).default(3),
  /** Softmax temperature over the cosine similarities. */
  temperature: z.number().positive().max(10).default(0.1),
  /** Rank of the generated adapter (truncated SVD of the merged Delta W). */
  r: z.number().int().min(1).max(1024).default(8),
  /** cvae only: candidates sampled for the description (the one nearest the merge is kept, all are reported). */
  samples: z.number().int().min(1).max(32).default(4),
  seed: z.number().int().min(0).default(0),
  backend: BackendChoiceSchema.default('auto'),
});
export type AdapterGenerateRequest = z.infer<typeof AdapterGenerateRequestSchema>;
export type AdapterGenerateRequestInput = z.input<typeof AdapterGenerateRequestSchema>;

export const AdapterGenerateReportSchema = z.object({
  adapterId: z.string(),
  path: z.string(),
  generator: z.enum(sgLoraGenerators),
  /** Each expert's similarity to the description and its weight (0 outside the top k). */
  experts: z.array(z.object({ adapterId: z.string(), name: z.string(), description: z.string(), cosine: z.number(), weight: z.number() })),
  /** ||Delta W_merged - B* A*||_F / ||Delta W_merged||_F summed over layers: what the rank-r truncation lost. */
  truncationError: z.number().min(0),
  /** cvae only: each sampled candidate's ||Delta W_candidate - Delta W_merge||_F / ||Delta W_merge||_F; the kept one is chosen. */
  candidates: z.array(z.object({ distanceToMerge: z.number().min(0), chosen: z.boolean() })).optional(),
  durationMs: z.number().min(0),
});
export type AdapterGenerateReport = z.infer<typeof AdapterGenerateReportSchema>;

export const AdapterDescribeRequestSchema = z.object({ adapterId: z.string().min(1), description: z.string().max(5000) });
