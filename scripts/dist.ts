// `npm run dist`: this OS's installers (electron-builder.yml), with two guards electron-builder lacks:
//  1. electron-builder needs the Electron zip (github.com) and Electron's headers (artifacts.electronjs.org,
//     to rebuild better-sqlite3 for Electron): both are checked first, so a machine that cannot reach them
//     gets one message saying what to do instead of a build that fails half-way;
//  2. its npmRebuild rebuilds native addons in place in node_modules for Electron's ABI, after which the
//     CLI, browser mode and the tests (plain Node) could no longer load better-sqlite3: the addons' build
//     folders are kept aside and put back when electron-builder is done.
// `npm run dist -- --check-config` checks the packaging without any download: an unpacked Linux app
// (dist/check/linux-unpacked) around a placeholder Electron binary (it does not run), with no rebuild and
// no fuses (both need the real binary), and the app.asar's contents checked.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const npx = process.platform === 'win32' ? 'npx.cmd' : 'npx';

/** Hosts a real build downloads from (ELECTRON_MIRROR replaces the zip's). */
export function downloadHosts(env: NodeJS.ProcessEnv): string[] {
  return [env.ELECTRON_MIRROR || 'https://github.com/', 'https://artifacts.electronjs.org/headers/'];
}

/** The hosts of `urls` that do not answer within the timeout. */
export async function unreachable(urls: string[], timeoutMs = 8000): Promise<string[]> {
  const answers = await Promise.all(
    urls.map((url) =>
      fetch(url, { method: 'HEAD', signal: AbortSignal.timeout(timeoutMs) }).then(
        () => null,
        () => url,
      ),
    ),
  );
  return answers.filter((url): url is string => url !== null);
}

export function offlineMessage(hosts: string[]): string {
  return [
    `npm run dist cannot build installers here: ${hosts.join(' and ')} did not answer.`,
    'electron-builder downloads the Electron binary zip (from github.com, or ELECTRON_MIRROR) and Electron’s',
    'headers (to rebuild better-sqlite3 for Electron). Build on a machine with internet access, on the OS of',
    'each installer: `npm install`, then `npm run dist` (Linux: AppImage + deb; macOS: dmg; Windows: nsis).',
    'To check the packaging config without downloads: `npm run dist -- --check-config`.',
  ].join('\n');
}

/** Native addons under node_modules that have a build folder (what npmRebuild rebuilds in place). */
export function nativeAddonBuilds(nodeModules: string): string[] {
  const builds: string[] = [];
  const visit = (dir: string) => {
    for (const name of existsSync(dir) ? readdirSync(dir) : []) {
      const full = path.join(dir, name);
      if (name.startsWith('@')) visit(full);
      else if (existsSync(path.join(full, 'binding.gyp')) && existsSync(path.join(full, 'build'))) builds.push(path.join(full, 'build'));
    }
  };
  visit(nodeModules);
  return builds;
}

/** Copies each build folder aside; the returned function puts them back as they were. */
export function keepAside(builds: string[]): () => void {
  const aside = mkdtempSync(path.join(tmpdir(), 'lora-workbench-native-'));
  const copies = builds.map((build, i) => {
    const copy = path.join(aside, String(i));
    cpSync(build, copy, { recursive: true, verbatimSymlinks: true });
    return { build, copy };
  });
  return () => {
    for (const { build, copy } of copies) {
      rmSync(build, { recursive: true, force: true });
      cpSync(copy, build, { recursive: true, verbatimSymlinks: true });
    }
    rmSync(aside, { recursive: true, force: true });
  };
}

function run(command: string, args: string[]): number {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
  return result.status ?? 1;
}

async function buildInstallers(args: string[]): Promise<number> {
  const missing = await unreachable(downloadHosts(process.env));
  if (missing.length > 0) {
    console.error(offlineMessage(missing));
    return 1;
  }
  if (run(npx, ['electron-vite', 'build']) !== 0) return 1;
  const restore = keepAside(nativeAddonBuilds(path.join(root, 'node_modules')));
  try {
    return run(npx, ['electron-builder', '--config', 'electron-builder.yml', ...args]);
  } finally {
    restore();
  }
}

async function checkConfig(): Promise<number> {
  if (run(npx, ['electron-vite', 'build']) !== 0) return 1;
  const placeholder = mkdtempSync(path.join(tmpdir(), 'electron-placeholder-'));
  writeFileSync(path.join(placeholder, 'electron'), '#!/bin/sh\necho "placeholder Electron (npm run dist -- --check-config)" >&2\nexit 1\n', { mode: 0o755 });
  mkdirSync(path.join(placeholder, 'resources'));
  const output = path.join(root, 'dist', 'check');
  rmSync(output, { recursive: true, force: true });
  try {
    const { build } = await import('electron-builder');
    await build({
      projectDir: root,
      linux: ['dir'],
      config: { extends: ['electron-builder.yml'], electronDist: placeholder, npmRebuild: false, electronFuses: null, directories: { output } },
    });
  } finally {
    rmSync(placeholder, { recursive: true, force: true });
  }
  return checkPackagedApp(path.join(output, 'linux-unpacked'));
}

/** The packaged app holds our code, and every production dependency with its own dependencies. */
export function checkPackagedApp(unpacked: string): number {
  const require = createRequire(path.join(root, 'package.json'));
  const asar = require('@electron/asar') as { listPackage(file: string, options: object): string[] };
  const listed = new Set(asar.listPackage(path.join(unpacked, 'resources', 'app.asar'), {}));
  const unpackedDir = path.join(unpacked, 'resources', 'app.asar.unpacked');
  const packaged = (file: string) => listed.has(file) || existsSync(path.join(unpackedDir, file));
  const ours = ['/package.json', '/out/main/index.js', '/out/main/worker.js', '/out/preload/index.cjs', '/out/renderer/index.html'];
  const missing = ours.filter((file) => !packaged(file));
  const manifest = (dir: string) => JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
  const dependencies = Object.keys(manifest(root).dependencies ?? {});
  for (const name of dependencies) {
    const own = Object.keys(manifest(path.join(root, 'node_modules', name)).dependencies ?? {});
    for (const dependency of [name, ...own]) {
      const candidates = [`/node_modules/${dependency}/package.json`, `/node_modules/${name}/node_modules/${dependency}/package.json`];
      if (!candidates.some(packaged)) missing.push(`${candidates[0]} (${dependency === name ? 'a dependency' : `needed by ${name}`})`);
    }
  }
  if (missing.length > 0) {
    console.error(`The packaged app (${unpacked}) is incomplete; missing:\n  ${[...new Set(missing)].join('\n  ')}`);
    return 1;
  }
  console.log(
    `Packaging config checked: ${unpacked} holds app.asar (${listed.size} entries: ${ours.join(', ')}) and the ${dependencies.length} production dependencies with their own dependencies, native addons unpacked beside it.`,
  );
  console.log('Its Electron binary is a placeholder: this folder does not run, and no installer was built.');
  return 0;
}

if (import.meta.filename === process.argv[1]) {
  const args = process.argv.slice(2);
  // An explicit exit: electron-builder leaves exit hooks behind that would end the process with 0.
  process.exit(args.includes('--check-config') ? await checkConfig() : await buildInstallers(args));
}
