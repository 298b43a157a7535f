// Which backends the parity suites check. `npm test` runs them on the backends every machine has (cpu,
// wasm); `npm run test:webgpu` (vitest project `webgpu`) sets WORKBENCH_TEST_BACKEND=webgpu and runs the
// same describe blocks on Dawn only, filtered to the tests named "... on webgpu" (what that needs:
// test/helpers/webgpu-setup.ts).
import { backendNames, type BackendName } from '../../src-shared/config.ts';
import type { tf } from '../../src-worker/tf.ts';

export function testBackends<T extends BackendName>(defaults: readonly T[]): BackendName[] {
  const only = process.env.WORKBENCH_TEST_BACKEND;
  if (!only) return [...defaults];
  if (!(backendNames as readonly string[]).includes(only)) {
    throw new Error(`WORKBENCH_TEST_BACKEND=${only} is not a backend; use one of ${backendNames.join(', ')}`);
  }
  return [only as BackendName];
}

/**
 * A tensor's values, read asynchronously: the webgpu backend's dataSync goes through OffscreenCanvas,
 * which Node does not have, so every check that may run on webgpu reads with data().
 */
export async function valuesOf(t: tf.Tensor): Promise<Float32Array> {
  return (await t.data()) as Float32Array;
}
