// `npm run build` (electron-vite build): out/main (the main process, plus the training worker as its own
// entry), out/preload (the contextBridge script) and out/renderer (the same bundle as build:renderer).
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'electron-vite';
import { rendererConfig } from './src-renderer/vite.config.ts';

const root = path.dirname(fileURLToPath(import.meta.url));

/**
 * electron-vite derives the Node and Chrome targets, and whether ESM output is allowed, from the installed
 * electron package. Electron is an optional dependency whose download is often skipped (CI, headless hosts
 * that only use browser mode), and the bundle does not need its binary: fall back to the major version
 * package.json asks for.
 */
function electronMajorVersion(): string {
  try {
    const require = createRequire(import.meta.url);
    return String(require('electron/package.json').version).split('.')[0]!;
  } catch {
    const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
    const range: string = pkg.optionalDependencies?.electron ?? pkg.devDependencies?.electron ?? pkg.dependencies?.electron;
    const major = /\d+/.exec(range ?? '')?.[0];
    if (!major) throw new Error('package.json names no electron version; add electron to optionalDependencies.');
    return major;
  }
}
process.env.ELECTRON_MAJOR_VER ||= electronMajorVersion();

/** Loaded from node_modules at run time: native addons, wasm and GPU bindings cannot be bundled. */
const runtimePackages = [/^better-sqlite3(\/|$)/, /^@tensorflow\//, /^webgpu(\/|$)/, /^@huggingface\//];

const rendererInput = path.join(root, 'src-renderer', 'index.html');
if (!existsSync(rendererInput)) throw new Error(`Missing ${rendererInput}`);

export default defineConfig({
  main: {
    build: {
      outDir: 'out/main',
      rolldownOptions: {
        // The worker is its own entry so src-main can start it as out/main/worker.js (src-main/worker-thread.ts).
        input: { index: 'src-main/electron/main.ts', worker: 'src-worker/main.ts' },
        external: runtimePackages,
      },
    },
  },
  preload: {
    build: {
      outDir: 'out/preload',
      // A sandboxed preload gets no module loader: everything it imports (zod, src-shared) is bundled in,
      // and it is CommonJS (.cjs, since package.json says "type": "module").
      externalizeDeps: false,
      rolldownOptions: {
        input: { index: 'src-main/electron/preload.ts' },
        output: { format: 'cjs', entryFileNames: '[name].cjs' },
      },
    },
  },
  renderer: {
    ...rendererConfig,
    build: {
      ...rendererConfig.build,
      // electron-vite resolves outDir against the working directory, not against root.
      outDir: 'out/renderer',
      rolldownOptions: { input: rendererInput },
    },
  },
});
