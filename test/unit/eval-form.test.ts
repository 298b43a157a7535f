// The "New evaluation" form as data (src-renderer/lib/eval-form.ts): the evals.start requests it sends
// (checked against the API's own schema) and the values it remembers.
import { describe, expect, it } from 'vitest';
import { EvalStartRequestSchema } from '../../src-shared/eval.ts';
import { buildStartRequests, datasetsFor, defaultFormState, FormError, loadFormState, parseLevels, saveFormState } from '../../src-renderer/lib/eval-form.ts';

class MemoryStorage {
  readonly items = new Map<string, string>();
  getItem(key: string) {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string) {
    this.items.set(key, value);
  }
}

describe('buildStartRequests', () => {
  it('evaluates the base model too, alike, when an adapter is the subject', () => {
    const state = {
      ...defaultFormState(),
      adapterId: 'ad-1',
      limit: '5',
      seed: '7',
      backend: 'wasm' as const,
      paths: { crowsPairs: ' /d/crows.csv ', bbq: '/d/bbq', qqp: '/d/qqp.tsv' },
    };
    const requests = buildStartRequests(state);
    expect(requests).toEqual([
      { suite: 'bias', datasets: { crowsPairs: '/d/crows.csv', bbq: '/d/bbq' }, limit: 5, seed: 7, backend: 'wasm' },
      { suite: 'bias', datasets: { crowsPairs: '/d/crows.csv', bbq: '/d/bbq' }, limit: 5, seed: 7, backend: 'wasm', adapterId: 'ad-1' },
    ]);
    for (const request of requests) expect(EvalStartRequestSchema.safeParse(request).success).toBe(true);
  });

  it("sends one robustness request (it scores the base model itself), families in the engine's order", () => {
    const state = {
      ...defaultFormState(),
      suite: 'robustness' as const,
      adapterId: 'ad-1',
      limit: '',
      task: 'qqp' as const,
      families: ['word-dropout' as const, 'typo' as const],
      levels: '0.2, 0 0.2',
      paths: { qqp: '/d/qqp.tsv', hotpotqa: '/d/h.json' },
    };
    const requests = buildStartRequests(state);
    expect(requests).toHaveLength(1);
    expect(requests[0]).toMatchObject({
      suite: 'robustness',
      adapterId: 'ad-1',
      limit: null,
      datasets: { qqp: '/d/qqp.tsv' },
      robustness: { task: 'qqp', families: ['typo', 'word-dropout'], levels: [0, 0.2] },
    });
    expect(EvalStartRequestSchema.safeParse(requests[0]).success).toBe(true);
    expect(buildStartRequests({ ...state, adapterId: null })[0]).not.toHaveProperty('adapterId');
  });

  it('says which field is wrong', () => {
    const field = (fn: () => unknown) => {
      try {
        fn();
      } catch (error) {
        return error instanceof FormError ? error.field : 'not a FormError';
      }
      return 'no error';
    };
    expect(field(() => buildStartRequests(defaultFormState()))).toBe('datasets');
    expect(field(() => buildStartRequests({ ...defaultFormState(), paths: { crowsPairs: '/c' }, limit: '0' }))).toBe('limit');
    expect(field(() => buildStartRequests({ ...defaultFormState(), paths: { crowsPairs: '/c' }, seed: '1.5' }))).toBe('seed');
    expect(field(() => buildStartRequests({ ...defaultFormState(), suite: 'robustness', paths: { qqp: '/q' }, families: [] }))).toBe('families');
    expect(field(() => parseLevels('0, 1.5'))).toBe('levels');
    expect(field(() => parseLevels(' '))).toBe('levels');
  });

  it('shows the fields each suite needs', () => {
    expect(datasetsFor('bias', 'qqp')).toEqual(['crowsPairs', 'stereoSet', 'bbq']);
    expect(datasetsFor('robustness', 'hotpotqa')).toEqual(['hotpotqa']);
    expect(datasetsFor('perplexity', 'qqp')).toEqual(['text', 'oasst1']);
  });

  it('sends a perplexity request with the corpus it was given, and asks for one when none is', () => {
    const [request] = buildStartRequests({ ...defaultFormState(), suite: 'perplexity', paths: { text: ' /c/valid.txt ', qqp: '/ignored' } });
    expect(request).toMatchObject({ suite: 'perplexity', datasets: { text: '/c/valid.txt' } });
    expect(Object.keys(request!.datasets)).toEqual(['text']);
    expect(() => buildStartRequests({ ...defaultFormState(), suite: 'perplexity' })).toThrow(/at least one of: Text corpus .*, OASST1 messages JSONL/);
  });
});

describe('remembered values', () => {
  it('keeps paths and settings but not the adapter, and ignores what it does not know', () => {
    const storage = new MemoryStorage();
    saveFormState(storage, { ...defaultFormState(), suite: 'qqp', adapterId: 'ad-1', paths: { qqp: '/d/qqp.tsv' }, limit: '50', families: ['synonym'] });
    const loaded = loadFormState(storage);
    expect(loaded).toMatchObject({ suite: 'qqp', adapterId: null, paths: { qqp: '/d/qqp.tsv' }, limit: '50', families: ['synonym'] });

    storage.setItem('lora-workbench.eval-form', JSON.stringify({ suite: 'nope', backend: 'tpu', paths: { evil: 'x', bbq: 3 }, families: ['typo', 'bogus'] }));
    const cleaned = loadFormState(storage);
    expect(cleaned.suite).toBe('bias');
    expect(cleaned.backend).toBe('auto');
    expect(cleaned.paths).toEqual({});
    expect(cleaned.families).toEqual(['typo']);

    storage.setItem('lora-workbench.eval-form', '{not json');
    expect(loadFormState(storage)).toEqual(defaultFormState());
  });
});
