// Chooses and starts the TensorFlow.js backend a run computes on.
// 'auto' tries, fastest first: tensorflow (native TensorFlow via tfjs-node[-gpu]) > webgpu (Dawn via
// the `webgpu` package, hardware adapters only) > wasm (XNNPACK) > cpu (plain JavaScript, always there).
// Every optional piece may be missing or broken on a user's machine, so each step is guarded and
// time-limited: a missing Vulkan driver or a stuck adapter request must degrade to wasm, never hang.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { backendNames, type BackendChoice, type BackendName } from '../src-shared/config.ts';
import type { BackendInfo as RunBackendInfo } from '../src-shared/runs.ts';

import { WorkbenchError } from '../src-shared/errors.ts';
import { installedBackends as sharedInstalledBackends, type PackageProbe } from '../src-shared/backends.ts';
import { registerWasmSliceKernels } from './kernels/wasm-slice.ts';
import { installWasmWarningHook } from './train/out-of-memory.ts';
import { installGradientRelease } from './kernels/release-gradients.ts';
import { tf } from './tf.ts';

/** What a run records of its backend; in this worker always one of TensorFlow.js's (never the pytorch engine). */
export type BackendInfo = RunBackendInfo & { name: BackendName };

const require = createRequire(import.meta.url);
const STEP_TIMEOUT_MS = 8000;

const INSTALL_HINTS: Record<BackendName, string> = {
  tensorflow:
    'Install @tensorflow/tfjs-node (CPU) or @tensorflow/tfjs-node-gpu (CUDA) with npm; their install step downloads the native TensorFlow library, so it needs network access and a supported platform.',
  webgpu: 'Install the `webgpu` npm package and a GPU driver with Vulkan (Linux: libvulkan1 and the vendor ICD), Metal (macOS) or D3D12 (Windows).',
  wasm: 'Reinstall @tensorflow/tfjs-backend-wasm (npm install); its dist/ folder must contain the .wasm binaries.',
  cpu: 'Reinstall @tensorflow/tfjs-backend-cpu (npm install).',
};

/** Node's module resolution, for the installed-backends rule in src-shared/backends.ts (the main process applies the same). */
const probe: PackageProbe = {
  resolve: (specifier) => {
    try {
      return require.resolve(specifier);
    } catch {
      return null;
    }
  },
  exists: fs.existsSync,
  platform: process.platform,
  arch: process.arch,
};

/** Backends whose packages are installed, found by resolving them without loading any native code. */
export function installedBackends(): BackendName[] {
  return sharedInstalledBackends(probe);
}

function withTimeout<T>(promise: Promise<T>, what: string, ms = STEP_TIMEOUT_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function reason(error: unknown): string {
  return error instanceof Error ? error.message.split('\n')[0]! : String(error);
}

/** Imports a package by a computed name so bundlers and tsc leave optional dependencies alone. */
function importOptional(specifier: string): Promise<unknown> {
  return import(/* @vite-ignore */ specifier);
}

async function activate(name: BackendName): Promise<void> {
  const ok = await withTimeout(tf.setBackend(name), `Starting the ${name} backend`);
  if (!ok || tf.getBackend() !== name) throw new Error(`tf.setBackend('${name}') failed (see the log above for the cause)`);
  await tf.ready();
}

async function initTensorflow(): Promise<BackendInfo> {
  const failures: string[] = [];
  for (const [pkg, adapter] of [
    ['@tensorflow/tfjs-node-gpu', 'TensorFlow C library (CUDA)'],
    ['@tensorflow/tfjs-node', 'TensorFlow C library (CPU)'],
  ] as const) {
    try {
      await withTimeout(importOptional(pkg), `Loading ${pkg}`);
      await activate('tensorflow');
      return { name: 'tensorflow', adapter };
    } catch (error) {
      failures.push(`${pkg}: ${reason(error)}`);
    }
  }
  throw new Error(failures.join('; '));
}

interface AdapterLike {
  info?: { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean };
  isFallbackAdapter?: boolean;
}

let webgpuInstalled = false;

function describeAdapter(adapter: AdapterLike): { label: string; software: boolean } {
  const info = adapter.info ?? {};
  const parts = [info.description, info.device, info.vendor, info.architecture].filter((p): p is string => !!p);
  const label = parts[0] ?? 'unnamed WebGPU adapter';
  const software =
    adapter.isFallbackAdapter === true || info.isFallbackAdapter === true || parts.some((p) => /llvmpipe|lavapipe|swiftshader|software|warp/i.test(p));
  return { label: parts.length > 1 ? `${label} (${parts.slice(1).join(', ')})` : label, software };
}

async function initWebgpu(auto: boolean): Promise<BackendInfo> {
  if (!webgpuInstalled) {
    const { create, globals } = (await withTimeout(importOptional('webgpu'), "Loading the 'webgpu' package")) as {
      create(flags: string[]): unknown;
      globals: object;
    };
    Object.assign(globalThis, globals);
    // Node 20 has no navigator; Node 21+ has one without gpu. tfjs-backend-webgpu looks for globalThis.navigator.gpu.
    const nav = ((globalThis as { navigator?: object }).navigator ??= {}) as object;
    Object.defineProperty(nav, 'gpu', { value: create([]), configurable: true, writable: true });
    webgpuInstalled = true;
  }
  const gpu = (globalThis as unknown as { navigator: { gpu: { requestAdapter(o?: object): Promise<AdapterLike | null> } } }).navigator.gpu;
  const adapter = await withTimeout(gpu.requestAdapter({ powerPreference: 'high-performance' }), 'Requesting a WebGPU adapter');
  if (!adapter) throw new Error('no WebGPU adapter was found (no GPU driver with Vulkan/Metal/D3D12 support)');
  const { label, software } = describeAdapter(adapter);
  // A CPU rasterizer behind WebGPU is many times slower than wasm: never pick it unasked.
  if (auto && software) throw new Error(`only a software adapter is available (${label})`);
  await withTimeout(importOptional('@tensorflow/tfjs-backend-webgpu'), 'Loading @tensorflow/tfjs-backend-webgpu');
  if (!tf.findBackendFactory('webgpu')) throw new Error('@tensorflow/tfjs-backend-webgpu did not register (navigator.gpu missing)');
  await activate('webgpu');
  return { name: 'webgpu', adapter: label };
}

let wasmPathsSet = false;

async function initWasm(): Promise<BackendInfo> {
  const wasm = (await withTimeout(
    import('@tensorflow/tfjs-backend-wasm'),
    'Loading @tensorflow/tfjs-backend-wasm',
  )) as typeof import('@tensorflow/tfjs-backend-wasm');
  if (!wasmPathsSet) {
    // The .wasm binaries sit next to the package's entry point; resolving it makes this work from any cwd.
    const entry = probe.resolve('@tensorflow/tfjs-backend-wasm');
    if (!entry) throw new Error('@tensorflow/tfjs-backend-wasm cannot be resolved');
    const dist = path.dirname(entry);
    if (!fs.existsSync(path.join(dist, 'tfjs-backend-wasm.wasm'))) throw new Error(`no .wasm binaries in ${dist}`);
    wasm.setWasmPaths(dist + path.sep);
    wasmPathsSet = true;
  }
  installWasmWarningHook();
  await activate('wasm');
  registerWasmSliceKernels();
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  const threads = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT');
  return { name: 'wasm', adapter: `XNNPACK (wasm${simd ? ' SIMD' : ''}${threads ? ', threads' : ''})` };
}

async function initCpu(): Promise<BackendInfo> {
  await activate('cpu');
  return { name: 'cpu', adapter: 'JavaScript (tfjs-backend-cpu)' };
}

function start(name: BackendName, auto: boolean): Promise<BackendInfo> {
  switch (name) {
    case 'tensorflow':
      return initTensorflow();
    case 'webgpu':
      return initWebgpu(auto);
    case 'wasm':
      return initWasm();
    case 'cpu':
      return initCpu();
  }
}

/**
 * Makes `choice` the active backend and says what computes. 'auto' falls through the list and calls
 * `log` with why each faster backend was skipped; an explicit choice that cannot start throws
 * backend_unavailable naming the cause and what to install.
 */
export async function initBackend(choice: BackendChoice, log?: (message: string) => void): Promise<BackendInfo> {
  // Every backend shares the engine, whose backward pass then frees what it is done with (memory-plan.ts counts on it).
  installGradientRelease();
  if (choice !== 'auto') {
    try {
      return await start(choice, false);
    } catch (error) {
      throw new WorkbenchError('backend_unavailable', `The ${choice} backend could not start: ${reason(error)}. ${INSTALL_HINTS[choice]}`, {
        backend: choice,
      });
    }
  }
  const skipped: string[] = [];
  for (const name of backendNames) {
    try {
      const info = await start(name, true);
      if (skipped.length) log?.(`Using the ${name} backend; skipped ${skipped.join('; ')}`);
      return info;
    } catch (error) {
      skipped.push(`${name} (${reason(error)})`);
    }
  }
  throw new WorkbenchError('backend_unavailable', `No TensorFlow.js backend could start: ${skipped.join('; ')}. ${INSTALL_HINTS.cpu}`);
}
