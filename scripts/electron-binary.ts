// The Electron binary for `npm start`, fetched once when it is missing. npm 11 runs only the install
// scripts that package.json "allowScripts" approves, and electron's is left unapproved on purpose: it
// downloads ~100 MB from github.com, and where that fails (offline, a firewall, a registry mirror only)
// it would fail the whole `npm install`. So the download is tried here instead, once, when the desktop
// app is first started; when it fails, `npm start` uses browser mode and says how to get the window.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

/**
 * Written into node_modules/electron when the download failed, so that later starts go straight to
 * browser mode instead of waiting on the network again; reinstalling electron removes it with the folder.
 */
export const DOWNLOAD_FAILED_MARKER = '.lora-workbench-download-failed';

/** How long the download may take: ~100 MB on a slow line. */
const DOWNLOAD_TIMEOUT_MS = 10 * 60_000;

function electronPackageDir(root: string): string | null {
  try {
    return path.dirname(createRequire(path.join(root, 'package.json')).resolve('electron/package.json'));
  } catch {
    return null;
  }
}

/** The binary install.js unpacked (its name is in path.txt, as electron's index.js reads it), or null. */
function downloadedBinary(packageDir: string): string | null {
  const pathFile = path.join(packageDir, 'path.txt');
  if (!existsSync(pathFile)) return null;
  const binary = path.join(packageDir, 'dist', readFileSync(pathFile, 'utf8').trim());
  return existsSync(binary) ? binary : null;
}

export interface EnsureOptions {
  env?: NodeJS.ProcessEnv;
  log?: (line: string) => void;
}

/** The Electron binary's path, downloading it first if this has not failed before; null means browser mode. */
export function ensureElectronBinary(root: string, options: EnsureOptions = {}): string | null {
  const env = options.env ?? process.env;
  const log = options.log ?? ((line: string) => console.error(line));
  const packageDir = electronPackageDir(root);
  if (!packageDir) {
    log('The electron package is not installed (an install with --omit=dev leaves it out): starting browser mode.');
    return null;
  }
  const installed = downloadedBinary(packageDir);
  if (installed) return installed;

  const installScript = path.relative(root, path.join(packageDir, 'install.js'));
  const howToRetry = `For the desktop window, run \`node ${installScript}\` on a connection that reaches github.com (or set ELECTRON_MIRROR to a mirror), then \`npm start\` again.`;
  const marker = path.join(packageDir, DOWNLOAD_FAILED_MARKER);
  if (existsSync(marker)) {
    log(`The Electron binary is not installed and its download failed before (${readFileSync(marker, 'utf8').trim()}): starting browser mode.`);
    log(howToRetry);
    return null;
  }
  if (env.ELECTRON_SKIP_BINARY_DOWNLOAD) {
    log('The Electron binary is not installed and ELECTRON_SKIP_BINARY_DOWNLOAD is set: starting browser mode.');
    log(howToRetry);
    return null;
  }

  log(
    `The Electron binary is not installed yet (npm does not run electron's download script). Downloading it once now: node ${installScript} (~100 MB from github.com)…`,
  );
  const result = spawnSync(process.execPath, [path.join(packageDir, 'install.js')], { cwd: root, env, stdio: 'inherit', timeout: DOWNLOAD_TIMEOUT_MS });
  const binary = downloadedBinary(packageDir);
  if (binary) {
    log('Electron downloaded.');
    return binary;
  }
  const why = result.error ? result.error.message : `exit code ${result.status ?? result.signal}`;
  writeFileSync(marker, `${new Date().toISOString()}, ${why}\n`);
  log(`The Electron download failed (${why}): starting browser mode; later starts will not try again.`);
  log(howToRetry);
  return null;
}
