// Issue 15, finding 5 ("Get the data"), the mechanism: a benchmark file is downloaded, kept only when its
// SHA-256 is the recorded one, never past its recorded size, once; from a loopback server standing in for
// the source. test/shared/benchmarks.test.ts fetches the real catalog's files (../shared) the same way.
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { benchmarks, BenchmarkStore, type Benchmark } from '../../src-main/benchmarks.ts';

const body = Buffer.from('sent_more,sent_less\nA,B\n'.repeat(100));
const sha256 = createHash('sha256').update(body).digest('hex');
let server: http.Server;
let base: string;
const requests: string[] = [];
let root: string;

beforeAll(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), 'lw-benchmarks-'));
  server = http.createServer((req, res) => {
    requests.push(req.url!);
    if (req.url === '/good.csv') return void res.end(body);
    if (req.url === '/tampered.csv') return void res.end(Buffer.concat([body.subarray(0, -1), Buffer.from('!')]));
    if (req.url === '/longer.csv') return void res.end(Buffer.concat([body, body]));
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  rmSync(root, { recursive: true, force: true });
});

const entry = (file: string): Benchmark => ({
  id: 'crows-pairs',
  label: 'Test pairs',
  datasetKey: 'crowsPairs',
  license: 'CC0',
  source: 'https://example.org',
  note: '',
  pathIs: 'file',
  files: [{ name: 'pairs.csv', url: `https://example.org/${file}`, bytes: body.length, sha256 }],
});

function store(file: string, dataDir: string) {
  return new BenchmarkStore({ paths: { dataDir }, catalog: [entry(file)], urlOf: (_b, f) => `${base}/${path.basename(f.url)}` });
}

describe('BenchmarkStore', () => {
  it('keeps a file whose SHA-256 matches, answers its path, and does not fetch it again', async () => {
    const dataDir = path.join(root, 'good');
    const benchmarkStore = store('good.csv', dataDir);
    expect(benchmarkStore.list()[0]!.path).toBeNull();
    const before = requests.length;
    const kept = await benchmarkStore.fetch('crows-pairs');
    expect(kept.path).toBe(path.join(dataDir, 'benchmarks', 'crows-pairs', 'pairs.csv'));
    expect(readFileSync(kept.path!).equals(body)).toBe(true);
    expect(await benchmarkStore.fetch('crows-pairs')).toEqual(kept);
    expect(requests.length - before).toBe(1);
    expect(store('good.csv', dataDir).list()[0]!.path).toBe(kept.path);
  });

  it.each([
    ['tampered.csv', /has SHA-256 [0-9a-f]{64}, not the recorded/],
    ['longer.csv', /sent more than the \d+ bytes/],
    ['missing.csv', /answered HTTP 404/],
  ])('keeps nothing of %s', async (file, message) => {
    const dataDir = path.join(root, file);
    await expect(store(file, dataDir).fetch('crows-pairs')).rejects.toMatchObject({ message: expect.stringMatching(message) });
    const dir = path.join(dataDir, 'benchmarks', 'crows-pairs');
    expect(existsSync(dir) ? readdirSync(dir) : []).toEqual([]);
  });

  it('names what it can get for an unknown id, and every catalog entry is pinned with a SHA-256 and a license', async () => {
    await expect(store('good.csv', path.join(root, 'x')).fetch('glue')).rejects.toMatchObject({
      code: 'not_found',
      message: expect.stringMatching(/can get crows-pairs/),
    });
    expect(benchmarks.map((b) => b.id)).toEqual(['crows-pairs', 'stereoset', 'bbq', 'hotpotqa', 'qqp']);
    for (const b of benchmarks) {
      expect(b.license).not.toBe('');
      for (const f of b.files) {
        expect(f.sha256).toMatch(/^[0-9a-f]{64}$/);
        expect(f.url).toMatch(/^https:\/\/raw\.githubusercontent\.com\/[^/]+\/[^/]+\/[0-9a-f]{40}\//);
      }
    }
  });
});
