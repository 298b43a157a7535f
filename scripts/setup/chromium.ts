// Finds the Chromium that the end-to-end tests drive, or installs one the way this machine allows.
// Shared by the set-up step (scripts/setup/index.ts) and test/e2e/playwright.config.ts, so that both
// pick the same browser.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function onPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, name);
    if (dir && existsSync(candidate)) return candidate;
  }
  return null;
}

function playwrightBrowser(): string | null {
  try {
    const { chromium } = createRequire(path.join(root, 'package.json'))('playwright-core') as { chromium: { executablePath(): string } };
    const executable = chromium.executablePath();
    return executable && existsSync(executable) ? executable : null;
  } catch {
    return null;
  }
}

const SYSTEM_BROWSERS: Record<string, string[]> = {
  linux: ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'],
  darwin: ['/Applications/Chromium.app/Contents/MacOS/Chromium', '/Applications/Google Chrome.app/Contents/MacOS/Google Chrome'],
  win32: [
    path.join(process.env.PROGRAMFILES ?? 'C:\\Program Files', 'Google', 'Chrome', 'Application', 'chrome.exe'),
    path.join(process.env.LOCALAPPDATA ?? '', 'Chromium', 'Application', 'chrome.exe'),
  ],
};

/** The browser to drive, in order: $CHROMIUM_PATH, Playwright's own download, a system Chromium or Chrome. */
export interface FoundBrowser {
  path: string;
  /** Where it was found, for the set-up log. */
  source: string;
}

export function findChromium(): FoundBrowser | null {
  if (process.env.CHROMIUM_PATH) {
    if (!existsSync(process.env.CHROMIUM_PATH)) throw new Error(`CHROMIUM_PATH is ${process.env.CHROMIUM_PATH}, which does not exist.`);
    return { path: process.env.CHROMIUM_PATH, source: 'CHROMIUM_PATH' };
  }
  const downloaded = playwrightBrowser();
  if (downloaded) return { path: downloaded, source: "Playwright's browser cache" };
  for (const name of SYSTEM_BROWSERS[process.platform] ?? SYSTEM_BROWSERS.linux) {
    const found = path.isAbsolute(name) ? (existsSync(name) ? name : null) : onPath(name);
    if (found) return { path: found, source: 'the system' };
  }
  return null;
}

export function chromiumVersion(executable: string): string {
  const probe = spawnSync(executable, ['--version'], { encoding: 'utf8' });
  return probe.status === 0 ? probe.stdout.trim() : 'version unknown';
}

const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;
const passwordlessSudo = (): boolean => !!onPath('sudo') && spawnSync('sudo', ['-n', 'true']).status === 0;

/** The exact command a person runs to install a browser here; null when none is known for this platform. */
export function manualInstallCommand(): string {
  if (process.platform === 'linux' && onPath('apt-get')) return 'sudo apt-get install -y chromium';
  if (process.platform === 'linux' && onPath('dnf')) return 'sudo dnf install -y chromium';
  return 'npx playwright install chromium';
}

type Log = (line: string) => void;

function runLogged(log: Log, command: string, args: string[]): boolean {
  log(`$ ${[command, ...args].join(' ')}`);
  const result = spawnSync(command, args, { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  return result.status === 0;
}

/**
 * Installs a browser: Debian's (or Fedora's) chromium package where we are root or have passwordless
 * sudo, else Playwright's own download into its cache (~/.cache/ms-playwright). Returns the browser
 * found afterwards, or null.
 */
export function installChromium(log: Log): FoundBrowser | null {
  const elevate = isRoot() ? [] : passwordlessSudo() ? ['sudo', '-n'] : null;
  if (process.platform === 'linux' && elevate) {
    const cmd = (...args: string[]): [string, string[]] => (elevate.length ? [elevate[0], [...elevate.slice(1), ...args]] : [args[0], args.slice(1)]);
    if (onPath('apt-get')) {
      log("Installing Debian's chromium package with apt-get (about 100 MB, a minute or two).");
      if (runLogged(log, ...cmd('apt-get', 'update', '-q')) && runLogged(log, ...cmd('apt-get', 'install', '-y', '-q', 'chromium'))) return findChromium();
    } else if (onPath('dnf')) {
      log('Installing chromium with dnf.');
      if (runLogged(log, ...cmd('dnf', 'install', '-y', 'chromium'))) return findChromium();
    }
  }
  log(`Downloading Playwright's Chromium into ${path.join(os.homedir(), '.cache', 'ms-playwright')}.`);
  if (runLogged(log, process.execPath, [path.join(root, 'node_modules', 'playwright-core', 'cli.js'), 'install', 'chromium'])) return findChromium();
  return null;
}
