// safetensors (https://github.com/huggingface/safetensors): an 8-byte little-endian header length N,
// N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {str: str}},
// then the raw little-endian tensor bytes; offsets count from the end of the header.
// Files come from anywhere, so every number in the header is checked before it is trusted.
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { floatToBf16, floatToHalf, widenBits, type HalfBits } from './half-bits.ts';

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16';
const DTYPE_BYTES: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2 };
/** The reference implementation refuses larger headers too (they are a DoS vector, not a real file). */
const MAX_HEADER_BYTES = 100_000_000;

export interface TensorData {
  shape: number[];
  data: Float32Array;
}
export interface LoadedTensor extends TensorData {
  /** The dtype stored in the file; data is always float32 (widened on each read for F16 and BF16). */
  dtype: SafetensorsDtype;
  /** F16 and BF16: the values as stored. */
  half?: HalfBits;
}
export interface SafetensorsFile {
  tensors: Map<string, LoadedTensor>;
  metadata: Record<string, string>;
}
export interface HeaderEntry {
  dtype: SafetensorsDtype;
  shape: number[];
  /** Relative to the start of the data section. */
  begin: number;
  end: number;
}
export interface SafetensorsHeader {
  /** Header length in bytes plus the 8-byte prefix: where the data section starts. */
  dataStart: number;
  entries: Map<string, HeaderEntry>;
  metadata: Record<string, string>;
}

function fail(source: string, message: string, details?: Record<string, unknown>): never {
  throw new WorkbenchError('format_invalid', `${source}: ${message}`, { file: source, ...details });
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
export const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Reads the 8-byte prefix: the header length, checked against the file size. */
export function headerLength(prefix: Uint8Array, fileBytes: number, source: string): number {
  if (fileBytes < 8) fail(source, `file is ${fileBytes} bytes, shorter than the 8-byte header length: it is truncated or not safetensors`);
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(fileBytes - 8)) {
    fail(source, `header length ${n} runs past the end of the file (${fileBytes - 8} bytes after the length): the file is truncated or not safetensors`);
  }
  if (n > BigInt(MAX_HEADER_BYTES)) fail(source, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  return Number(n);
}

/** Parses and validates the JSON header against the size of the data section that follows it. */
export function parseHeader(headerBytes: Uint8Array, dataBytes: number, source: string): SafetensorsHeader {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (error) {
    fail(source, `header is not valid UTF-8 JSON (${error instanceof Error ? error.message : String(error)})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail(source, 'header is not a JSON object');

  const metadata: Record<string, string> = {};
  const entries = new Map<string, HeaderEntry>();
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(source, '__metadata__ is not an object');
      for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof value !== 'string') fail(source, `__metadata__.${key} is ${JSON.stringify(value)}, not a string`);
        metadata[key] = value;
      }
      continue;
    }
    const entry = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
    if (typeof entry !== 'object' || entry === null) fail(source, `tensor "${name}" is not an object`, { tensor: name });
    const { dtype, shape, data_offsets: offsets } = entry;
    if (typeof dtype !== 'string') fail(source, `tensor "${name}" has no dtype`, { tensor: name });
    if (!(dtype in DTYPE_BYTES)) {
      fail(
        source,
        `tensor "${name}" has dtype ${dtype}; supported: ${Object.keys(DTYPE_BYTES).join(', ')} (convert the weights to float32, float16 or bfloat16)`,
        {
          tensor: name,
          dtype,
        },
      );
    }
    if (!Array.isArray(shape) || !shape.every(isCount))
      fail(source, `tensor "${name}" has shape ${JSON.stringify(shape)}, not a list of sizes`, { tensor: name });
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) || offsets[0] > offsets[1]) {
      fail(source, `tensor "${name}" has data_offsets ${JSON.stringify(offsets)}, not [begin, end] with begin <= end`, { tensor: name });
    }
    const [begin, end] = offsets as [number, number];
    const expected = numel(shape) * DTYPE_BYTES[dtype as SafetensorsDtype];
    if (end - begin !== expected) {
      fail(source, `tensor "${name}" (${dtype} ${JSON.stringify(shape)}) needs ${expected} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`, {
        tensor: name,
      });
    }
    if (end > dataBytes) {
      fail(source, `tensor "${name}" data_offsets [${begin}, ${end}] run past the data section (${dataBytes} bytes): the file is truncated`, {
        tensor: name,
      });
    }
    entries.set(name, { dtype: dtype as SafetensorsDtype, shape: shape as number[], begin, end });
  }

  const sorted = [...entries].filter(([, e]) => e.end > e.begin).sort((a, b) => a[1].begin - b[1].begin);
  for (let i = 1; i < sorted.length; i++) {
    const [prevName, prev] = sorted[i - 1]!;
    const [name, cur] = sorted[i]!;
    if (cur.begin < prev.end) {
      fail(source, `tensors "${prevName}" [${prev.begin}, ${prev.end}] and "${name}" [${cur.begin}, ${cur.end}] overlap`, { tensor: name });
    }
  }
  return { dataStart: 8 + headerBytes.length, entries, metadata };
}

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The 16-bit values of an F16 or BF16 entry: a view of the file's bytes when aligned on a little-endian machine, else a copy. */
function halfBits(bytes: Uint8Array, start: number, entry: HeaderEntry): HalfBits {
  const count = numel(entry.shape);
  const offset = bytes.byteOffset + start + entry.begin;
  const format = entry.dtype as HalfBits['format'];
  if (littleEndian && offset % 2 === 0) return { format, bits: new Uint16Array(bytes.buffer, offset, count) };
  const view = new DataView(bytes.buffer, offset, count * 2);
  const bits = new Uint16Array(count);
  for (let i = 0; i < count; i++) bits[i] = view.getUint16(i * 2, true);
  return { format, bits };
}

function decodeF32(bytes: Uint8Array, start: number, entry: HeaderEntry): Float32Array {
  const count = numel(entry.shape);
  const offset = bytes.byteOffset + start + entry.begin;
  // Aligned data is copied in one block; the copy lets the file buffer be freed after loading.
  if (littleEndian && offset % 4 === 0) return new Float32Array(bytes.buffer, offset, count).slice();
  const view = new DataView(bytes.buffer, offset, count * 4);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

/**
 * An F16 or BF16 tensor keeps its 16-bit values (`half`), so that a model may hold them as they are
 * (kernels/half-weights.ts); `data` widens them to f32 on each read, for the readers that want floats.
 */
function halfTensor(shape: number[], half: HalfBits): LoadedTensor {
  return {
    dtype: half.format,
    shape,
    half,
    get data() {
      const out = new Float32Array(half.bits.length);
      widenBits(half.bits, half.format, out);
      return out;
    },
  };
}

/** Parses a whole safetensors file; `source` names it in error messages. */
export function parseSafetensors(bytes: Uint8Array, source = 'file'): SafetensorsFile {
  const n = headerLength(bytes, bytes.length, source);
  const header = parseHeader(bytes.subarray(8, 8 + n), bytes.length - 8 - n, source);
  const tensors = new Map<string, LoadedTensor>();
  for (const [name, entry] of header.entries) {
    const shape = [...entry.shape];
    tensors.set(
      name,
      entry.dtype === 'F32'
        ? { dtype: 'F32', shape, data: decodeF32(bytes, header.dataStart, entry) }
        : halfTensor(shape, halfBits(bytes, header.dataStart, entry)),
    );
  }
  return { tensors, metadata: header.metadata };
}

type TensorsInput = Map<string, TensorData> | Record<string, TensorData>;

/** Writes tensors in the layout of the reference implementation: sorted names, header space-padded to 8 bytes. */
export function serializeSafetensors(tensors: TensorsInput, metadata?: Record<string, string>, dtype: SafetensorsDtype = 'F32'): Uint8Array {
  const entries = (tensors instanceof Map ? [...tensors] : Object.entries(tensors)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const size = DTYPE_BYTES[dtype];
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of entries) {
    if (name === '__metadata__') throw new WorkbenchError('internal', 'A tensor cannot be named __metadata__');
    if (t.data.length !== numel(t.shape)) {
      throw new WorkbenchError('internal', `Tensor "${name}" has ${t.data.length} values but shape ${JSON.stringify(t.shape)} needs ${numel(t.shape)}`);
    }
    const bytes = t.data.length * size;
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + padded);
  let at = 8 + padded;
  for (const [, t] of entries) {
    const data = t.data;
    if (dtype === 'F32') {
      if (littleEndian) out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at);
      else for (let i = 0; i < data.length; i++) view.setFloat32(at + i * 4, data[i]!, true);
    } else {
      const convert = dtype === 'F16' ? floatToHalf : floatToBf16;
      for (let i = 0; i < data.length; i++) view.setUint16(at + i * 2, convert(data[i]!), true);
    }
    at += data.length * size;
  }
  return out;
}

export async function readSafetensorsFile(file: string): Promise<SafetensorsFile> {
  return parseSafetensors(await fs.promises.readFile(file), file);
}

/** Reads only the header of a file (cheap even for multi-GB weights). */
export async function readSafetensorsHeader(file: string): Promise<SafetensorsHeader> {
  const handle = await fs.promises.open(file, 'r');
  try {
    const { size } = await handle.stat();
    const prefix = new Uint8Array(8);
    await handle.read(prefix, 0, Math.min(8, size), 0);
    const n = headerLength(prefix, size, file);
    const headerBytes = new Uint8Array(n);
    await handle.read(headerBytes, 0, n, 8);
    return parseHeader(headerBytes, size - 8 - n, file);
  } finally {
    await handle.close();
  }
}

/**
 * Replaces `file` with `bytes` so that a crash leaves either the old or the new content, never a torn
 * file: write a temp file in the same folder, fsync it, rename over the target, fsync the folder.
 */
export async function writeFileAtomic(file: string, bytes: Uint8Array | string): Promise<void> {
  const dir = path.dirname(file);
  const temp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const handle = await fs.promises.open(temp, 'w');
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } catch (error) {
    await handle.close().catch(() => {});
    await fs.promises.rm(temp, { force: true });
    throw error;
  }
  await handle.close();
  try {
    await fs.promises.rename(temp, file);
  } catch (error) {
    await fs.promises.rm(temp, { force: true });
    throw error;
  }
  try {
    const dirHandle = await fs.promises.open(dir, 'r');
    await dirHandle.sync().finally(() => dirHandle.close());
  } catch {
    // Folders cannot be opened for fsync on Windows; the rename itself is already atomic there.
  }
}
