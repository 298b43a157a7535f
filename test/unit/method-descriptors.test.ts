// The descriptors the New run form and the CLI's help are generated from: every field names a setting
// that exists in its RunConfig section with a value of the field's kind, a choice field offers exactly
// the values its zod enum accepts, and every descriptor has a registered method (and the reverse).
import { describe, expect, it } from 'vitest';
import { MethodDescriptorSchema } from '../../src-shared/api.ts';
import { engineMethods, RunConfigSchema, settingsSchemas } from '../../src-shared/config.ts';
import { methodDefinitions, methodDescriptors } from '../../src-shared/methods.ts';
import { methodIds } from '../../src-worker/methods/index.ts';

describe('method descriptors', () => {
  it('match the registry one to one and parse with the API schema', () => {
    expect(methodDescriptors.map((d) => d.id).sort()).toEqual(methodIds().sort());
    for (const d of methodDescriptors) expect(MethodDescriptorSchema.safeParse(d).success, d.id).toBe(true);
  });

  it.each(methodDescriptors.flatMap((d) => d.fields.map((f) => [`${d.settingsKey}.${f.key}`, d.settingsKey, f, d.id] as const)))(
    '%s names a setting of its kind',
    (_path, settingsKey, field, method) => {
      const defaults = settingsSchemas[settingsKey].parse({}) as Record<string, unknown>;
      expect(Object.keys(defaults)).toContain(field.key);
      const value = defaults[field.key];
      switch (field.kind) {
        case 'int':
        case 'number':
          // LoRA+'s learningRateB is null until set.
          expect(value === null || typeof value === 'number').toBe(true);
          break;
        case 'boolean':
          expect(typeof value).toBe('boolean');
          break;
        case 'string-list':
          expect(Array.isArray(value)).toBe(true);
          break;
        case 'text':
          expect(typeof value).toBe('string');
          break;
        case 'choice': {
          expect(field.options).toContain(value);
          // Every option is accepted and nothing else is.
          for (const option of field.options) expect(RunConfigSchema.safeParse({ method, [settingsKey]: { [field.key]: option } }).success, option).toBe(true);
          expect(RunConfigSchema.safeParse({ method, [settingsKey]: { [field.key]: 'not-an-option' } }).success).toBe(false);
          break;
        }
      }
    },
  );

  it('each declare a settings section of their own, extend only a method that extends none, and give RunConfig its variant', () => {
    const keys = methodDefinitions.map((d) => d.settingsKey);
    expect(new Set(keys).size).toBe(keys.length);
    for (const d of methodDefinitions) {
      if ('extends' in d)
        expect(
          methodDefinitions.find((base) => base.id === d.extends && !('extends' in base)),
          d.id,
        ).toBeDefined();
      const config = RunConfigSchema.parse({ method: d.id }) as Record<string, unknown>;
      expect(config[d.settingsKey], d.id).toEqual(d.settings.parse({}));
    }
  });

  it('list, per engine, the methods whose descriptor names it: tfjs trains every method', () => {
    expect(engineMethods.tfjs).toEqual(methodDefinitions.map((d) => d.id));
    for (const d of methodDefinitions) expect(engineMethods.pytorch.includes(d.id), d.id).toBe((d.engines as readonly string[]).includes('pytorch'));
  });

  it("offers bias-aware LoRA's reading as a choice", () => {
    const reading = methodDescriptors.find((d) => d.id === 'bias-aware')!.fields.find((f) => f.key === 'reading');
    expect(reading).toMatchObject({ kind: 'choice', options: ['counterfactual', 'adversarial'] });
  });
});
