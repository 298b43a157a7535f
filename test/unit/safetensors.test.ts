// The safetensors reader and writer: lossless f32, f16/bf16 within their rounding, metadata, the
// exact layout of the reference implementation, and a named error for every way a header can lie.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { parseSafetensors, readSafetensorsFile, readSafetensorsHeader, serializeSafetensors, writeFileAtomic } from '../../src-worker/formats/safetensors.ts';

const fixture = path.join(import.meta.dirname, '..', 'fixtures', 'gpt2-tiny', 'model.safetensors');

function sample(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s / 2 ** 32) * 2 - 1) * 10 ** ((i % 7) - 3); // magnitudes 1e-3 .. 1e3, both signs
  }
  return out;
}

/** A file built by hand: u64 header length, header text, data bytes. */
function rawFile(header: string, dataBytes = 0, headerLength?: number): Uint8Array {
  const text = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + text.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength ?? text.length), true);
  out.set(text, 8);
  return out;
}

function formatError(fn: () => unknown): WorkbenchError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(WorkbenchError);
    expect((error as WorkbenchError).code).toBe('format_invalid');
    return error as WorkbenchError;
  }
  throw new Error('expected a format_invalid error');
}

describe('serializeSafetensors / parseSafetensors', () => {
  const tensors = new Map([
    ['b.weight', { shape: [3, 5], data: sample(15, 1) }],
    ['a.bias', { shape: [4], data: sample(4, 2) }],
    ['scalar', { shape: [], data: new Float32Array([Math.PI]) }],
    ['empty', { shape: [0, 3], data: new Float32Array(0) }],
  ]);

  it('round-trips float32 exactly, with shapes and sorted keys', () => {
    const bytes = serializeSafetensors(tensors);
    const { tensors: back } = parseSafetensors(bytes);
    expect([...back.keys()]).toEqual(['a.bias', 'b.weight', 'empty', 'scalar']);
    for (const [name, t] of tensors) {
      expect(back.get(name)!.dtype).toBe('F32');
      expect(back.get(name)!.shape).toEqual(t.shape);
      expect(Array.from(back.get(name)!.data)).toEqual(Array.from(t.data));
    }
  });

  it('round-trips float16 within half a unit in the last place (2^-11 relative)', () => {
    const { tensors: back } = parseSafetensors(serializeSafetensors(tensors, undefined, 'F16'));
    const orig = tensors.get('b.weight')!.data;
    const got = back.get('b.weight')!;
    expect(got.dtype).toBe('F16');
    for (let i = 0; i < orig.length; i++) {
      // Values below 2^-14 are subnormal in f16: absolute spacing 2^-24.
      expect(Math.abs(got.data[i]! - orig[i]!)).toBeLessThanOrEqual(Math.max(Math.abs(orig[i]!) * 2 ** -11, 2 ** -25));
    }
  });

  it('round-trips bfloat16 within 2^-8 relative', () => {
    const { tensors: back } = parseSafetensors(serializeSafetensors(tensors, undefined, 'BF16'));
    const orig = tensors.get('b.weight')!.data;
    const got = back.get('b.weight')!;
    expect(got.dtype).toBe('BF16');
    for (let i = 0; i < orig.length; i++) expect(Math.abs(got.data[i]! - orig[i]!)).toBeLessThanOrEqual(Math.abs(orig[i]!) * 2 ** -8);
  });

  it('rounds to nearest even and keeps special values in f16 and bf16', () => {
    const special = new Float32Array([0, -0, 1, -2, 65504, 70000, -Infinity, NaN, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 2 ** -24, 2 ** -26]);
    const f16 = parseSafetensors(serializeSafetensors({ x: { shape: [special.length], data: special } }, undefined, 'F16')).tensors.get('x')!.data;
    // 1 + 2^-11 is a tie between 1 and 1 + 2^-10: even is 1. 1 + 3*2^-11 ties to 1 + 2^-9 (even mantissa).
    expect(Array.from(f16)).toEqual([0, -0, 1, -2, 65504, Infinity, -Infinity, NaN, 1, 1 + 2 ** -9, 2 ** -24, 0]);
    const bf16 = parseSafetensors(
      serializeSafetensors({ x: { shape: [4], data: new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8, NaN, -Infinity]) } }, undefined, 'BF16'),
    ).tensors.get('x')!.data;
    expect(Array.from(bf16)).toEqual([1, 1 + 2 ** -6, NaN, -Infinity]);
  });

  it('round-trips __metadata__ and writes the reference layout (8-byte aligned, space padded)', () => {
    const bytes = serializeSafetensors(tensors, { format: 'pt', step: '12' });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const header = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    expect(header).toMatch(/^\{"__metadata__":\{"format":"pt","step":"12"\}/);
    expect(header.trimEnd().endsWith('}')).toBe(true);
    expect(header.slice(header.trimEnd().length)).toMatch(/^ *$/);
    expect(parseSafetensors(bytes).metadata).toEqual({ format: 'pt', step: '12' });
  });

  it('reads the file the Python fixture script wrote by hand', async () => {
    const { tensors: weights, metadata } = await readSafetensorsFile(fixture);
    expect(metadata).toEqual({ format: 'pt' });
    expect(weights.get('transformer.h.0.attn.c_attn.weight')!.shape).toEqual([32, 96]);
    const header = await readSafetensorsHeader(fixture);
    expect([...header.entries.keys()].sort()).toEqual([...weights.keys()].sort());
  });
});

describe('parseSafetensors rejects files that lie about themselves', () => {
  it('a file shorter than the length prefix', () => {
    expect(formatError(() => parseSafetensors(new Uint8Array(5), 'short.safetensors')).message).toMatch(/short\.safetensors.*5 bytes/);
  });

  it('a header length past the end of the file', () => {
    const bytes = rawFile('{}', 0, 1000);
    expect(formatError(() => parseSafetensors(bytes, 'x.safetensors')).message).toMatch(/x\.safetensors: header length 1000 runs past the end/);
  });

  it('a header that is not JSON', () => {
    expect(formatError(() => parseSafetensors(rawFile('{"a": [1, 2'), 'x')).message).toMatch(/not valid UTF-8 JSON/);
    expect(formatError(() => parseSafetensors(rawFile('[1, 2]'), 'x')).message).toMatch(/not a JSON object/);
  });

  it('an entry without dtype, shape or data_offsets', () => {
    expect(formatError(() => parseSafetensors(rawFile('{"w":{"shape":[1],"data_offsets":[0,4]}}', 4))).message).toMatch(/"w" has no dtype/);
    expect(formatError(() => parseSafetensors(rawFile('{"w":{"dtype":"F32","data_offsets":[0,4]}}', 4))).message).toMatch(/"w" has shape undefined/);
    expect(formatError(() => parseSafetensors(rawFile('{"w":{"dtype":"F32","shape":[1]}}', 4))).message).toMatch(/"w" has data_offsets undefined/);
  });

  it('offsets outside the data section (a truncated file)', () => {
    const error = formatError(() => parseSafetensors(rawFile('{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', 8), 'cut.safetensors'));
    expect(error.message).toMatch(/cut\.safetensors: tensor "w" data_offsets \[0, 16\] run past the data section \(8 bytes\)/);
    expect(error.details).toMatchObject({ file: 'cut.safetensors', tensor: 'w' });
  });

  it('a shape that does not match the byte length', () => {
    expect(formatError(() => parseSafetensors(rawFile('{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}', 24))).message).toMatch(
      /"w" \(F32 \[2,3\]\) needs 24 bytes but data_offsets \[0, 20\] hold 20/,
    );
  });

  it('overlapping tensors', () => {
    const header = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}';
    expect(formatError(() => parseSafetensors(rawFile(header, 12))).message).toMatch(/"a" \[0, 8\] and "b" \[4, 12\] overlap/);
  });

  it('an unsupported dtype, named with what is supported', () => {
    expect(formatError(() => parseSafetensors(rawFile('{"w":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}', 8))).message).toMatch(
      /"w" has dtype I64; supported: F32, F16, BF16/,
    );
  });

  it('non-string metadata', () => {
    expect(formatError(() => parseSafetensors(rawFile('{"__metadata__":{"step":3}}'))).message).toMatch(/__metadata__\.step is 3/);
  });
});

describe('writeFileAtomic', () => {
  it('replaces the file whole and leaves no temp file behind', async () => {
    const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'lw-atomic-'));
    const file = path.join(dir, 'adapter.safetensors');
    await writeFileAtomic(file, 'old');
    const bytes = serializeSafetensors({ w: { shape: [2], data: new Float32Array([1, 2]) } });
    await writeFileAtomic(file, bytes);
    expect(new Uint8Array(await fs.promises.readFile(file))).toEqual(bytes);
    expect(await fs.promises.readdir(dir)).toEqual(['adapter.safetensors']);
    await expect(writeFileAtomic(path.join(dir, 'missing', 'x'), 'y')).rejects.toThrow(/ENOENT/);
    expect(await fs.promises.readdir(dir)).toEqual(['adapter.safetensors']);
    await fs.promises.rm(dir, { recursive: true });
  });
});
