// Turns whatever a call threw into what the error panel shows: the code, the full message, the details,
// and one line on what to do next.
import { WorkbenchErrorSchema, type ErrorCode } from '../../src-shared/errors.ts';

export interface ShownError {
  code: ErrorCode | null;
  message: string;
  details: unknown;
  hint: string;
}

const hints: Record<ErrorCode, string> = {
  invalid_input: 'Correct the fields named in the message and try again.',
  not_found: 'Something named in the message does not exist (any more): check the path, pick another one, or go back to the list and reload.',
  conflict: 'The state changed meanwhile; this page now shows the current state. Try again if the action still applies.',
  model_invalid: 'Check that the model folder holds config.json, the *.safetensors weights and tokenizer.json, or pick the default model.',
  dataset_invalid: 'Fix the rows named in the message (line numbers are in the details), or pick the sample dataset.',
  format_invalid: 'The named file is damaged or not what it claims to be: download or export it again.',
  backend_unavailable: 'Start a new run with another backend; "auto" picks the best one that loads.',
  out_of_memory: 'Lower the batch size or the max sequence length, or use a smaller rank or fewer target modules.',
  export_mismatch: 'The exported files did not reproduce the trained adapter. Keep the run folder and report the figures shown.',
  worker_failed: 'The training process crashed. Resume from the last checkpoint; if it fails again, read the log below.',
  internal: 'Read the log below for what happened; resume from the last checkpoint if there is one.',
};

const UNKNOWN_HINT = 'Read the message above and the log below for what happened, then try again.';

export function describeError(error: unknown): ShownError {
  const parsed = WorkbenchErrorSchema.safeParse(error);
  if (parsed.success) {
    return { code: parsed.data.code, message: parsed.data.message, details: parsed.data.details, hint: hints[parsed.data.code] };
  }
  // Electron's contextBridge turns a rejected WorkbenchError into an Error whose message starts with
  // "Error invoking remote method …: " and keeps the rest; the code travels as a property when it survives.
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code in hints) {
    return { code: code as ErrorCode, message, details: undefined, hint: hints[code as ErrorCode] };
  }
  // A form's own check (eval-form.ts FormError, run-form) names its field: it is the user's input, not a crash.
  const field = (error as { field?: unknown } | null)?.field;
  if (typeof field === 'string') return { code: 'invalid_input', message, details: { field }, hint: hints.invalid_input };
  return { code: null, message, details: undefined, hint: UNKNOWN_HINT };
}
