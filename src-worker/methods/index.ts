// The method registry (after PEFT's register_peft_method): one register line per method, keyed by the
// id src-shared/methods.ts describes to the UI and the CLI.
import { WorkbenchError } from '../../src-shared/errors.ts';
import type { RunConfig } from '../../src-shared/config.ts';
import { methodDescriptors, methodSettingsOf } from '../../src-shared/methods.ts';
import { bitfit, full } from './base-parameters.ts';
import { biasAware } from './bias-aware.ts';
import { houlsby } from './houlsby.ts';
import { promptTuning } from './prompt-tuning.ts';
import { qlora } from './qlora.ts';
import { lora } from './lora.ts';
import { loraPlus } from './lora-plus.ts';
import { selora } from './selora.ts';
import type { MethodImplementation } from './types.ts';

const registry = new Map<string, MethodImplementation<unknown>>();

export function registerMethod<Settings>(impl: MethodImplementation<Settings>): void {
  if (registry.has(impl.id)) throw new WorkbenchError('internal', `Method "${impl.id}" is already registered.`);
  if (!methodDescriptors.some((d) => d.id === impl.id)) {
    throw new WorkbenchError('internal', `Method "${impl.id}" has no descriptor in src-shared/methods.ts; add one so the UI and CLI can offer it.`);
  }
  registry.set(impl.id, impl as MethodImplementation<unknown>);
}

export function getMethod(id: string): MethodImplementation<unknown> {
  const impl = registry.get(id);
  if (!impl) throw new WorkbenchError('invalid_input', `Unknown method "${id}"; known methods: ${[...registry.keys()].join(', ')}.`, { method: id });
  return impl;
}

/** A configuration's method and its parsed settings (field-named errors for bad ones). */
export function methodOf(config: RunConfig): { method: MethodImplementation<unknown>; settings: unknown } {
  const method = getMethod(config.method);
  return { method, settings: method.parseSettings(methodSettingsOf(config)) };
}

export function methodIds(): string[] {
  return [...registry.keys()];
}

registerMethod(lora);
registerMethod(loraPlus);
registerMethod(selora);
registerMethod(biasAware);
registerMethod(full);
registerMethod(bitfit);
registerMethod(promptTuning);
registerMethod(houlsby);
registerMethod(qlora);
