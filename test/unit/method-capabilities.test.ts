// What each method declares in its registry entry matches what its adapters do: the training loop
// and the export act on the declaration alone, so a wrong one would skip a hook or mislabel an export.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultRunConfig, methodIds } from '../../src-shared/config.ts';
import { loadCausalLM } from '../../src-worker/formats/model-folder.ts';
import { getMethod } from '../../src-worker/methods/index.ts';
import { adapterHooks } from '../../src-worker/methods/types.ts';
import type { CausalLM } from '../../src-worker/models/types.ts';
import { initBackend } from '../../src-worker/backend.ts';

const modelDir = path.join(import.meta.dirname, '..', 'fixtures', 'gpt2-tiny');
// The richest settings of each method: every hook and loss it can have is switched on.
const richest: Record<string, unknown> = {
  'bias-aware': { lora: defaultRunConfig().lora, biasAware: { tasks: ['a', 'b'], lambdaAlign: 1 } },
  'prompt-tuning': { numVirtualTokens: 2, init: 'random' },
};

let model: CausalLM;
beforeAll(async () => {
  await initBackend('cpu');
  model = await loadCausalLM(modelDir);
});
afterAll(() => model.dispose());

describe('method capabilities', () => {
  for (const id of methodIds) {
    it(`${id} declares exactly the hooks its adapter implements`, () => {
      const method = getMethod(id);
      const adapter = method.create(model, method.parseSettings(richest[id] ?? {}), 1);
      try {
        const implemented = adapterHooks.filter((hook) => typeof (adapter as unknown as Record<string, unknown>)[hook] === 'function');
        expect(implemented).toEqual(adapterHooks.filter((hook) => method.capabilities.hooks.includes(hook)));
      } finally {
        adapter.dispose();
      }
    });
  }

  it('a task-mixture batcher and a flattened PEFT form come with the multi-task settings only', () => {
    const method = getMethod('bias-aware');
    const single = method.parseSettings({});
    const multi = method.parseSettings(richest['bias-aware']);
    expect(method.capabilities.batcher(single)).toEqual({ kind: 'shuffled' });
    expect(method.capabilities.batcher(multi)).toEqual({ kind: 'task-mixture', tasks: ['a', 'b'], ratios: [] });
    expect(method.capabilities.peftForm(single)).toBe('native');
    expect(method.capabilities.peftForm(multi)).toBe('flattened');
  });

  it('only LoRA-family methods fold into merged weights', () => {
    expect(methodIds.filter((id) => getMethod(id).capabilities.mergeable)).toEqual(['lora', 'lora-plus', 'selora', 'bias-aware', 'qlora']);
  });
});
