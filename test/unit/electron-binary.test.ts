// `npm start`'s Electron check (scripts/electron-binary.ts) on a fake electron package whose install.js
// either fails (as offline) or unpacks a binary the way electron's own does (path.txt + dist/).
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DOWNLOAD_FAILED_MARKER, ensureElectronBinary } from '../../scripts/electron-binary.ts';

const roots: string[] = [];
afterEach(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

/** A project folder with node_modules/electron; install.js counts its runs and succeeds or fails. */
function fakeProject(install: 'fails' | 'unpacks' | 'absent-package'): { root: string; packageDir: string; installRuns: () => number } {
  const root = mkdtempSync(path.join(tmpdir(), 'electron-binary-'));
  roots.push(root);
  writeFileSync(path.join(root, 'package.json'), '{"name":"fake-project"}');
  const packageDir = path.join(root, 'node_modules', 'electron');
  const runs = path.join(root, 'install-runs');
  if (install !== 'absent-package') {
    mkdirSync(packageDir, { recursive: true });
    writeFileSync(path.join(packageDir, 'package.json'), '{"name":"electron","version":"41.7.1"}');
    const body =
      install === 'fails'
        ? 'console.error("getaddrinfo ENOTFOUND github.com"); process.exit(1);'
        : 'fs.mkdirSync(path.join(__dirname, "dist")); fs.writeFileSync(path.join(__dirname, "dist", "electron"), ""); fs.writeFileSync(path.join(__dirname, "path.txt"), "electron");';
    writeFileSync(
      path.join(packageDir, 'install.js'),
      `const fs = require("fs"), path = require("path"); fs.appendFileSync(${JSON.stringify(runs)}, "x"); ${body}`,
    );
  }
  return { root, packageDir, installRuns: () => (existsSync(runs) ? readFileSync(runs, 'utf8').length : 0) };
}

function ensure(root: string, env: NodeJS.ProcessEnv = {}) {
  const lines: string[] = [];
  const binary = ensureElectronBinary(root, { env: { PATH: process.env.PATH, ...env }, log: (line) => lines.push(line) });
  return { binary, said: lines.join('\n') };
}

describe('ensureElectronBinary', () => {
  it('downloads a missing binary once and returns its path', () => {
    const project = fakeProject('unpacks');
    const first = ensure(project.root);
    expect(first.binary).toBe(path.join(project.packageDir, 'dist', 'electron'));
    expect(first.said).toContain('Downloading it once now: node node_modules/electron/install.js');
    expect(ensure(project.root).binary).toBe(first.binary);
    expect(project.installRuns()).toBe(1);
  });

  it('falls back to browser mode when the download fails, says how to get the window, and does not retry', () => {
    const project = fakeProject('fails');
    const first = ensure(project.root);
    expect(first.binary).toBeNull();
    expect(first.said).toMatch(/The Electron download failed \(exit code 1\): starting browser mode/);
    expect(first.said).toContain('run `node node_modules/electron/install.js` on a connection that reaches github.com');
    expect(existsSync(path.join(project.packageDir, DOWNLOAD_FAILED_MARKER))).toBe(true);

    const second = ensure(project.root);
    expect(second.binary).toBeNull();
    expect(second.said).toMatch(/its download failed before \(.*exit code 1\)/);
    expect(project.installRuns()).toBe(1);
  });

  it('does not download when ELECTRON_SKIP_BINARY_DOWNLOAD is set', () => {
    const project = fakeProject('unpacks');
    const { binary, said } = ensure(project.root, { ELECTRON_SKIP_BINARY_DOWNLOAD: '1' });
    expect(binary).toBeNull();
    expect(said).toContain('ELECTRON_SKIP_BINARY_DOWNLOAD is set');
    expect(project.installRuns()).toBe(0);
  });

  it('starts browser mode when the electron package itself is absent', () => {
    const { binary, said } = ensure(fakeProject('absent-package').root);
    expect(binary).toBeNull();
    expect(said).toContain('The electron package is not installed');
  });
});
