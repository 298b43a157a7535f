// The run configuration: one shape per method, strict about keys (a typo is an error naming the key
// and the key it most likely meant, never a silent default), and configurations stored in the older
// all-sections shape still read.
import { describe, expect, it } from 'vitest';
import { closestKey, defaultConfigOf, migrateStoredRunConfig, RunConfigSchema, sectionKeysOf, StoredRunConfigSchema } from '../../src-shared/config.ts';
import { methodDescriptors } from '../../src-shared/methods.ts';

const messages = (input: unknown) => {
  const parsed = RunConfigSchema.safeParse(input);
  return parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
};

describe('RunConfigSchema', () => {
  it('refuses an unknown key, naming it and the known key it most likely means', () => {
    expect(messages({ trainning: { maxSteps: 5 } })).toEqual([': Unknown setting "trainning": did you mean "training"?']);
    expect(messages({ training: { maxStep: 5 } })).toEqual(['training: Unknown setting "maxStep": did you mean "maxSteps"?']);
    expect(messages({ method: 'selora', selora: { lamdbaSem: 1 } })).toEqual(['selora: Unknown setting "lamdbaSem": did you mean "lambdaSem"?']);
    expect(messages({ colour: 'blue' })[0]).toMatch(/Unknown setting "colour": known settings here: .*training/);
  });

  it('carries only the sections its method reads, and says which method reads another section', () => {
    expect(Object.keys(defaultConfigOf('lora-plus')).sort()).toEqual([
      'backend',
      'dataset',
      'distributed',
      'engine',
      'lora',
      'loraPlus',
      'method',
      'model',
      'name',
      'training',
    ]);
    expect(Object.keys(defaultConfigOf('houlsby')).sort()).toEqual([
      'backend',
      'dataset',
      'distributed',
      'engine',
      'houlsby',
      'method',
      'model',
      'name',
      'training',
    ]);
    expect(RunConfigSchema.parse({}).method).toBe('lora');
    expect(messages({ method: 'lora', selora: {} })).toEqual([': Unknown setting "selora": method "lora" has no selora settings ("selora" has)']);
    expect(messages({ method: 'dora' })[0]).toMatch(/Unknown method "dora"; known methods: lora, lora-plus/);
  });

  it("reads a configuration stored with every method's section as its own method's", () => {
    const stored = {
      method: 'selora',
      lora: { r: 2 },
      loraPlus: { ratio: 4 },
      selora: { hiddenSize: 3 },
      qlora: { format: 'int8' },
      training: { maxSteps: 9 },
    };
    expect(migrateStoredRunConfig(stored)).toEqual({ method: 'selora', lora: { r: 2 }, selora: { hiddenSize: 3 }, training: { maxSteps: 9 } });
    const config = StoredRunConfigSchema.parse(stored);
    expect(config).toEqual(RunConfigSchema.parse({ method: 'selora', lora: { r: 2 }, selora: { hiddenSize: 3 }, training: { maxSteps: 9 } }));
    // Strictness still holds for what the migration leaves: a typo in a kept section is refused.
    expect(StoredRunConfigSchema.safeParse({ method: 'lora', lora: { rank: 2 } }).success).toBe(false);
  });

  it('suggests a key only when it is near enough to be a typo', () => {
    expect(closestKey('trainning', ['training', 'model'])).toBe('training');
    expect(closestKey('Backend', ['backend'])).toBe('backend');
    expect(closestKey('temperature', ['training', 'model'])).toBeNull();
  });
});

describe('method descriptors and configuration variants', () => {
  it('agree on the sections each method reads: the reused one first, its own last', () => {
    for (const d of methodDescriptors) {
      const reused = d.extends ? methodDescriptors.find((e) => e.id === d.extends)!.settingsKey : null;
      expect(sectionKeysOf(d.id), d.id).toEqual(reused ? [reused, d.settingsKey] : [d.settingsKey]);
    }
  });
});

describe('method descriptors read their bounds from the schemas', () => {
  const field = (method: string, key: string) => methodDescriptors.find((d) => d.id === method)!.fields.find((f) => f.key === key)!;

  it('a strictly positive setting is an exclusive minimum, as the schema says', () => {
    expect(field('lora', 'alpha')).toMatchObject({ kind: 'number', min: 0, minExclusive: true });
    expect(field('lora-plus', 'ratio')).toMatchObject({ kind: 'number', min: 0, minExclusive: true, max: 1000 });
    expect(field('lora', 'r')).toMatchObject({ kind: 'int', min: 1, max: 1024 });
    expect(field('lora', 'dropout')).toMatchObject({ kind: 'number', min: 0, max: 0.9 });
    expect('minExclusive' in field('lora', 'dropout')).toBe(false);
    expect(field('qlora', 'format')).toMatchObject({ kind: 'choice', options: ['nf4', 'int8'] });
  });
});
