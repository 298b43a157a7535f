// `npm start`: the desktop app when Electron is installed, otherwise the same UI in a browser.
// Builds the renderer first when out/renderer is missing or older than src-renderer.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { register } from 'tsx/esm/api';

// The Electron binary check is TypeScript (scripts/electron-binary.ts, unit-tested), loaded as bin/ does.
register();
const { ensureElectronBinary } = await import('./electron-binary.ts');

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const npx = process.platform === 'win32' ? 'npx.cmd' : 'npx';

function newestMtime(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules') continue;
    const full = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(full) : statSync(full).mtimeMs);
  }
  return newest;
}

function rendererIsStale() {
  const index = path.join(root, 'out', 'renderer', 'index.html');
  if (!existsSync(index)) return true;
  const sources = path.join(root, 'src-renderer');
  return existsSync(sources) && newestMtime(sources) > statSync(index).mtimeMs;
}

function run(command, args) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
  if (result.status !== 0) {
    console.error(`\`${command} ${args.join(' ')}\` failed (exit code ${result.status ?? result.signal}).`);
    process.exit(result.status ?? 1);
  }
}

/** Runs a long-lived child with this terminal, passing Ctrl-C on and exiting with its code. */
function handOver(command, args) {
  const child = spawn(command, args, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
  // Ctrl-C already reaches the child through the terminal's process group: sending it again would
  // cut its graceful shutdown short. SIGTERM (from a service manager) is only sent to us, so pass it on.
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', () => child.kill('SIGTERM'));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 130 : 1)));
}

if (rendererIsStale()) {
  console.error('Building the renderer (npm run build:renderer)…');
  run(npm, ['run', 'build:renderer']);
}

if (ensureElectronBinary(root)) {
  run(npx, ['electron-vite', 'build']);
  handOver(npx, ['electron-vite', 'preview', ...process.argv.slice(2)]);
} else {
  handOver(process.execPath, [path.join(root, 'bin', 'lora-workbench.mjs'), 'serve', ...process.argv.slice(2)]);
}
