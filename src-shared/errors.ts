// Errors cross every process boundary as plain {code, message, details} objects (never class instances),
// so the renderer, the CLI and the worker can all show the same actionable message.
import { z } from 'zod';

export const errorCodes = [
  'invalid_input', // a request or file failed validation; details name the field
  'not_found', // an id or path that does not exist
  'conflict', // the request is not allowed in the current state (e.g. resume a running run)
  'model_invalid', // a model folder is missing or has inconsistent files
  'dataset_invalid', // a dataset file has bad rows (details carry line numbers)
  'format_invalid', // a safetensors / tokenizer / config file is truncated or lies about itself
  'backend_unavailable', // the requested compute backend could not be loaded
  'out_of_memory', // the backend ran out of memory; message says what to lower
  'export_mismatch', // an exported adapter failed its verification
  'worker_failed', // the training worker crashed
  'internal',
] as const;
export type ErrorCode = (typeof errorCodes)[number];

export const WorkbenchErrorSchema = z.object({
  code: z.enum(errorCodes),
  message: z.string(),
  details: z.unknown().optional(),
});
export type WorkbenchErrorData = z.infer<typeof WorkbenchErrorSchema>;

export class WorkbenchError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'WorkbenchError';
  }

  toJSON(): WorkbenchErrorData {
    return { code: this.code, message: this.message, details: this.details };
  }

  static from(error: unknown): WorkbenchError {
    if (error instanceof WorkbenchError) return error;
    const parsed = WorkbenchErrorSchema.safeParse(error);
    if (parsed.success) return new WorkbenchError(parsed.data.code, parsed.data.message, parsed.data.details);
    const message = error instanceof Error ? error.message : String(error);
    // Backends' own wording, matched as words: "OOM" alone once turned any path with "room" or "bloom" into
    // batch-size advice. Case matters for OOM (an acronym); the phrases are matched in any case.
    if (/out of memory|Failed to allocate|allocation failed/i.test(message) || /\bOOM\b/.test(message)) {
      return new WorkbenchError(
        'out_of_memory',
        `${message}. Lower the batch size or the sequence length, choose fewer target modules or a smaller rank, or pick another backend.`,
      );
    }
    return new WorkbenchError('internal', message);
  }
}

/** Parses `value` with `schema`, throwing an invalid_input error that names every bad field. */
export function validate<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message }));
  const summary = issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ');
  throw new WorkbenchError('invalid_input', `Invalid ${what}: ${summary}`, { issues });
}
