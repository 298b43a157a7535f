// The signal of the API call being answered, carried through every await without a parameter on each
// WorkbenchApi method: the WebSocket server aborts it when the connection closes, and the worker pool
// (worker-pool.ts) ends the job the departed caller was waiting for instead of reading on for nobody.
import { AsyncLocalStorage } from 'node:async_hooks';

const storage = new AsyncLocalStorage<AbortSignal>();

/** Runs `call` with `signal` as the current call's signal. */
export function withCallSignal<T>(signal: AbortSignal, call: () => Promise<T>): Promise<T> {
  return storage.run(signal, call);
}

/** The signal of the API call this code runs for, if its front door gave one. */
export function callSignal(): AbortSignal | undefined {
  return storage.getStore();
}
