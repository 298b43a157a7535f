// Backend selection: cpu and wasm start here on any machine and must compute the same numbers;
// optional native backends that are not installed fail with an actionable error, never a hang.
import { afterAll, describe, expect, it } from 'vitest';
import { backendNames } from '../../src-shared/config.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { initBackend, installedBackends } from '../../src-worker/backend.ts';
import { tf } from '../../src-worker/tf.ts';

function seededMatrix(rows: number, cols: number, seed: number): Float32Array {
  const out = new Float32Array(rows * cols);
  let s = seed;
  for (let i = 0; i < out.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

async function matmulOn(choice: 'cpu' | 'wasm'): Promise<Float32Array> {
  const info = await initBackend(choice);
  expect(info.name).toBe(choice);
  expect(tf.getBackend()).toBe(choice);
  const a = tf.tensor2d(seededMatrix(37, 53, 1), [37, 53]);
  const b = tf.tensor2d(seededMatrix(53, 29, 2), [53, 29]);
  const c = tf.matMul(a, b);
  const data = (await c.data()) as Float32Array;
  tf.dispose([a, b, c]);
  return data;
}

describe('initBackend', () => {
  afterAll(async () => {
    await initBackend('cpu');
  });

  it('starts cpu and wasm, and their matmuls agree with a float64 reference', async () => {
    const cpu = await matmulOn('cpu');
    const wasm = await matmulOn('wasm');
    const a = seededMatrix(37, 53, 1);
    const b = seededMatrix(53, 29, 2);
    let maxDiff = 0;
    for (let i = 0; i < 37; i++) {
      for (let j = 0; j < 29; j++) {
        let ref = 0;
        for (let k = 0; k < 53; k++) ref += a[i * 53 + k]! * b[k * 29 + j]!;
        maxDiff = Math.max(maxDiff, Math.abs(cpu[i * 29 + j]! - ref), Math.abs(wasm[i * 29 + j]! - ref));
      }
    }
    expect(maxDiff).toBeLessThan(1e-4);
  });

  it('names what computes', async () => {
    expect(await initBackend('cpu')).toEqual({ name: 'cpu', adapter: 'JavaScript (tfjs-backend-cpu)' });
    expect((await initBackend('wasm')).adapter).toMatch(/^XNNPACK \(wasm/);
  });

  it("'auto' picks a backend that works and makes it active", async () => {
    const logs: string[] = [];
    const info = await initBackend('auto', (m) => logs.push(m));
    expect(backendNames).toContain(info.name);
    expect(tf.getBackend()).toBe(info.name);
    const x = tf.tensor1d([1, 2, 3]);
    const sum = tf.sum(tf.mul(x, x));
    expect(sum.dataSync()[0]).toBeCloseTo(14, 5);
    tf.dispose([x, sum]);
    // Anything faster than wasm that was skipped is explained.
    if (info.name === 'wasm' || info.name === 'cpu') expect(logs.join('\n')).toMatch(/skipped tensorflow/);
  });

  it('an explicit backend that is not installed throws backend_unavailable with what to install', async () => {
    if (installedBackends().includes('tensorflow')) return; // only meaningful where tfjs-node is absent
    const error = await initBackend('tensorflow').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WorkbenchError);
    expect((error as WorkbenchError).code).toBe('backend_unavailable');
    expect((error as WorkbenchError).message).toMatch(/@tensorflow\/tfjs-node/);
  });
});

describe('installedBackends', () => {
  it('lists the packages that resolve, cpu and wasm always', () => {
    const found = installedBackends();
    expect(found).toContain('cpu');
    expect(found).toContain('wasm');
    for (const name of found) expect(backendNames).toContain(name);
  });
});
