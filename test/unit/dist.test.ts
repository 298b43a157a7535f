// `npm run dist`'s guards (scripts/dist.ts): the download check that stops an offline build with one clear
// message, and the native addons' build folders put back after electron-builder rebuilt them for Electron.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { downloadHosts, keepAside, nativeAddonBuilds, offlineMessage, unreachable } from '../../scripts/dist.ts';

const folders: string[] = [];
afterEach(() => {
  for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
});

/** A port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('the download check', () => {
  it('names the hosts that do not answer and says how to build elsewhere', async () => {
    const dead = `http://127.0.0.1:${await closedPort()}/`;
    expect(await unreachable([dead], 2000)).toEqual([dead]);
    const message = offlineMessage([dead]);
    expect(message).toContain(`${dead} did not answer`);
    expect(message).toContain('Build on a machine with internet access');
    expect(message).toContain('npm run dist -- --check-config');
  });

  it('checks ELECTRON_MIRROR instead of github.com when it is set, and always the headers host', () => {
    expect(downloadHosts({})).toEqual(['https://github.com/', 'https://artifacts.electronjs.org/headers/']);
    expect(downloadHosts({ ELECTRON_MIRROR: 'https://mirror.example/electron/' })[0]).toBe('https://mirror.example/electron/');
  });
});

describe('native addons kept aside', () => {
  it('finds addons with a build folder (scoped ones too) and puts their builds back as they were', () => {
    const nodeModules = mkdtempSync(path.join(tmpdir(), 'dist-native-'));
    folders.push(nodeModules);
    const addon = (name: string, built: boolean) => {
      const dir = path.join(nodeModules, name);
      mkdirSync(path.join(dir, 'build', 'Release'), { recursive: true });
      writeFileSync(path.join(dir, 'binding.gyp'), '{}');
      if (built) writeFileSync(path.join(dir, 'build', 'Release', 'addon.node'), 'built for node');
    };
    addon('better-sqlite3', true);
    addon('@scope/native', true);
    mkdirSync(path.join(nodeModules, 'plain-js', 'build'), { recursive: true });

    const builds = nativeAddonBuilds(nodeModules).sort();
    expect(builds).toEqual([path.join(nodeModules, '@scope', 'native', 'build'), path.join(nodeModules, 'better-sqlite3', 'build')]);

    const restore = keepAside(builds);
    // What electron-builder's npmRebuild does: the build folder cleaned and rebuilt for Electron.
    const binary = path.join(nodeModules, 'better-sqlite3', 'build', 'Release', 'addon.node');
    writeFileSync(binary, 'built for electron');
    rmSync(path.join(nodeModules, '@scope', 'native', 'build'), { recursive: true });
    restore();
    expect(readFileSync(binary, 'utf8')).toBe('built for node');
    expect(existsSync(path.join(nodeModules, '@scope', 'native', 'build', 'Release', 'addon.node'))).toBe(true);
  });
});
