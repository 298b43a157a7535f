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

/**
 * tfjs-backend-wasm reports a failed XNNPACK allocation with a console warning and carries on with an
 * unwritten output. While installed, such a warning is remembered, and `check` throws it as an error.
 */
export function watchWasmWarnings(): { check(): void; dispose(): void } {
  const original = console.warn;
  let seen: string | null = null;
  console.warn = (...args: unknown[]) => {
    const text = args.map(String).join(' ');
    if (/\bXNN status\b/i.test(text)) seen ??= text;
    original.apply(console, args);
  };
  return {
    check() {
      if (seen) throw new Error(seen);
    },
    dispose() {
      console.warn = original;
    },
  };
}
