// User datasets: a JSONL or CSV file previewed, mapped column by column onto the workbench's
// prompt / completion shape, and registered in SQLite with its hash, row count and source.
import { z } from 'zod';

export const datasetFormats = ['jsonl', 'csv', 'tsv'] as const;

/** Which source column feeds each field; a `text` mapping trains on every token (no prompt). */
export const ColumnMappingSchema = z
  .object({
    prompt: z.string().min(1).optional(),
    completion: z.string().min(1).optional(),
    text: z.string().min(1).optional(),
    /** Alpaca's optional input column: when mapped, the prompt is the instruction (the `prompt` column) and this
     * input in Alpaca's layout, exactly as a {"instruction","input","output"} JSONL file is read for training. */
    input: z.string().min(1).optional(),
    /** Optional task label (multi-task training, per-task reports). */
    task: z.string().min(1).optional(),
  })
  .refine((m) => Boolean(m.text) !== Boolean(m.completion), { message: 'map either completion (with an optional prompt) or text' });
export type ColumnMapping = z.infer<typeof ColumnMappingSchema>;

export const DatasetPreviewRequestSchema = z.object({
  path: z.string().min(1),
  /** Guessed from the extension when omitted. */
  format: z.enum(datasetFormats).optional(),
  /** Applied to the preview rows when given, so the user sees the prompt/completion they will train on. */
  mapping: ColumnMappingSchema.optional(),
  rows: z.number().int().min(1).max(200).default(20),
});
export type DatasetPreviewRequest = z.infer<typeof DatasetPreviewRequestSchema>;
export type DatasetPreviewRequestInput = z.input<typeof DatasetPreviewRequestSchema>;

export const RowErrorSchema = z.object({ line: z.number().int(), message: z.string() });

export const DatasetPreviewSchema = z.object({
  path: z.string(),
  format: z.enum(datasetFormats),
  columns: z.array(z.string()),
  /** The first rows as read, values as strings. */
  rows: z.array(z.record(z.string(), z.string())),
  /** The same rows after the mapping (when one was given). */
  mapped: z.array(z.object({ prompt: z.string(), completion: z.string(), task: z.string().nullable() })).nullable(),
  /** Rows in what was read: the whole file, or its head when `partial`. */
  rowCount: z.number().int(),
  /** True when only the file's first megabytes were read (a large file's preview): rowCount and errorCount cover those. */
  partial: z.boolean().default(false),
  /** Rows that cannot be used, with their line numbers (the first 100). */
  errors: z.array(RowErrorSchema),
  errorCount: z.number().int(),
  /** A mapping guessed from the column names (prompt/completion, instruction/output, question/answer, text…). */
  suggestedMapping: z.record(z.string(), z.string()).nullable(),
});
export type DatasetPreview = z.infer<typeof DatasetPreviewSchema>;

export const DatasetRegisterRequestSchema = z.object({
  path: z.string().min(1),
  name: z.string().min(1).max(200),
  format: z.enum(datasetFormats).optional(),
  mapping: ColumnMappingSchema,
});
export type DatasetRegisterRequest = z.infer<typeof DatasetRegisterRequestSchema>;

/** A registered dataset. Runs name it by id in RunConfig.dataset; training reads the normalized JSONL. */
export const DatasetSchema = z.object({
  id: z.string(),
  name: z.string(),
  /** The user's file as registered. */
  sourcePath: z.string(),
  format: z.enum(datasetFormats),
  mapping: ColumnMappingSchema,
  /** sha256 of the source file's bytes at registration. */
  sha256: z.string(),
  rowCount: z.number().int(),
  /** Rows left out at registration for errors (their line numbers are in the preview). */
  skippedRows: z.number().int(),
  /** The prompt/completion JSONL written at registration, which runs train on. */
  normalizedPath: z.string(),
  createdAt: z.string(),
  /** Runs that name this dataset. Removing it then keeps its normalized file (and its id resolvable) for them. */
  usedByRuns: z.number().int().min(0),
});
export type Dataset = z.infer<typeof DatasetSchema>;
