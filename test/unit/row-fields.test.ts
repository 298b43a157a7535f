import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { backendColumns, backendOf, camelCased, parsedJson, patchColumns } from '../../src-main/store/row-fields.ts';

describe('row fields', () => {
  it('renames every snake_case column to its camelCase field and keeps the values', () => {
    expect(camelCased({ id: 'a', run_id: 'r', last_checkpoint_step: null, trainable_params: 3 })).toEqual({
      id: 'a',
      runId: 'r',
      lastCheckpointStep: null,
      trainableParams: 3,
    });
  });

  it('reads a JSON column through its schema, and no text as null', () => {
    const schema = z.object({ done: z.number(), total: z.number().default(10) });
    expect(parsedJson(schema, '{"done":2}')).toEqual({ done: 2, total: 10 });
    expect(parsedJson(schema, null)).toBeNull();
    expect(() => parsedJson(schema, '{"done":"x"}')).toThrow();
  });

  it('joins the backend columns, null until a backend reported', () => {
    expect(backendOf('cpu', null)).toEqual({ name: 'cpu', adapter: '' });
    expect(backendOf('wasm', 'simd')).toEqual({ name: 'wasm', adapter: 'simd' });
    expect(backendOf(null, null)).toBeNull();
  });

  it('writes a patch as snake_case columns: objects as JSON, undefined left alone, null kept to clear', () => {
    expect(patchColumns({ status: 'running', lastCheckpointStep: null, progress: { done: 1 }, finishedAt: undefined, slices: [1] })).toEqual({
      status: 'running',
      last_checkpoint_step: null,
      progress: '{"done":1}',
      slices: '[1]',
    });
    expect(backendColumns(null)).toEqual({ backend_name: null, backend_adapter: null });
    expect(backendColumns({ name: 'cpu', adapter: '' })).toEqual({ backend_name: 'cpu', backend_adapter: '' });
  });
});
