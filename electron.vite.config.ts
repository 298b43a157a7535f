// `npm run build` (electron-vite build): out/main (the main process, plus the training worker as its own
// entry), out/preload (the contextBridge script) and out/renderer (the same bundle as build:renderer).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'electron-vite';
import { rendererConfig } from './src-renderer/vite.config.ts';

const root = path.dirname(fileURLToPath(import.meta.url));

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
