// Builds the renderer alone (`npm run build:renderer`): the same bundle the Electron window loads from
// file:// and the loopback server serves in browser mode, hence the relative base.
// Paths are relative to the working directory because npm scripts run from the package root and this
// file must not import node: modules (src-renderer is a browser zone; see test/unit/boundaries.test.ts).
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig, type UserConfig } from 'vite';

/** Shared with the renderer section of electron.vite.config.ts. */
export const rendererConfig = {
  root: 'src-renderer',
  base: './',
  plugins: [svelte({ configFile: false, compilerOptions: { runes: true } })],
  build: {
    // Relative to root.
    outDir: '../out/renderer',
    emptyOutDir: true,
    // Chromium 120 = Electron 28; the browser mode needs any current browser.
    target: 'chrome120',
    chunkSizeWarningLimit: 1024,
  },
} satisfies UserConfig;

export default defineConfig(rendererConfig);
