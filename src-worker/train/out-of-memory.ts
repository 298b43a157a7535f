// A backend that runs out of memory despite the plan (train/memory-plan.ts) is reported as
// out_of_memory with the plan's figures and advice, never as a bare wasm abort. The patterns are the
// messages each backend actually produces, matched whole so that unrelated text (a path with "room"
// in it) is not read as out of memory.
import { WorkbenchError } from '../../src-shared/errors.ts';
import type { MemoryPlan } from './memory-plan.ts';

const OUT_OF_MEMORY_MESSAGES = [
  // wasm: a malloc that failed at the 4 GiB heap returns 0, and the kernel then writes through it.
  /\bmemory access out of bounds\b/i,
  // emscripten's abort when the heap cannot grow, and V8's when the memory object cannot.
  /\bCannot enlarge memory arrays\b/i,
  /\bAborted\(OOM\)/,
  /WebAssembly\.Memory(\.prototype)?\.grow/i,
  /\bArray buffer allocation failed\b/i,
  // XNNPACK's xnn_status_out_of_memory (6), as tfjs-backend-wasm reports it.
  /\bXNN status\b.*\bGot status 6\b/i,
  // webgpu: Dawn's allocation and validation messages.
  /\bOut of memory\b/,
  /\bFailed to allocate\b/i,
  /\bexceeds the max(imum)? (buffer|storage buffer binding) size\b/i,
];

export function isOutOfMemory(error: unknown): boolean {
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return OUT_OF_MEMORY_MESSAGES.some((pattern) => pattern.test(message));
}

/** The error a failed step becomes: out_of_memory with the plan's figures and advice, or the error itself. */
export function classifyStepError(error: unknown, plan: MemoryPlan | null): unknown {
  if (error instanceof WorkbenchError || !isOutOfMemory(error)) return error;
  const cause = error instanceof Error ? error.message : String(error);
  const figures = plan
    ? ` The plan counted ${(plan.figures.total / 1e9).toFixed(2)} GB of ${(plan.limits.poolBytes / 1e9).toFixed(2)} GB (${plan.limits.poolLabel}) at micro-batch ${plan.microBatchSize}.`
    : '';
  return new WorkbenchError(
    'out_of_memory',
    `The ${plan?.limits.backend ?? 'compute'} backend ran out of memory (${cause}).${figures} Lower training.microBatchSize or training.maxSeqLen, use QLoRA (NF4) for a large model, or train with the PyTorch engine.`,
    { cause, figures: plan?.figures },
  );
}

let lastXnnWarning: string | null = null;
let hookInstalled = false;

/**
 * tfjs-backend-wasm reports a failed XNNPACK allocation (status 6) with a warning and carries on with
 * an unwritten output. Its Emscripten module binds console.warn when it initializes, so this hook must
 * be installed before the wasm backend starts (backend.ts): it remembers the last XNNPACK warning.
 */
export function installWasmWarningHook(): void {
  if (hookInstalled) return;
  hookInstalled = true;
  const original = console.warn;
  console.warn = (...args: unknown[]) => {
    const text = args.map(String).join(' ');
    if (/\bXNN status\b/i.test(text)) lastXnnWarning = text;
    original.apply(console, args);
  };
}

/** Throws the XNNPACK warning seen since the last call, if any (after a step: its results are not to be trusted). */
export function throwOnXnnWarning(): void {
  const warning = lastXnnWarning;
  lastXnnWarning = null;
  if (warning) throw new Error(warning);
}
