// Issue 15, finding 5: "Get the data" for the real catalog. A loopback HTTP server serves the benchmark files
// kept in ../shared/data (byte-for-byte copies of the pinned sources, see each SOURCE.md) at the catalog's
// paths; every file must pass its recorded SHA-256, and what is kept must read as the evaluation suites read it.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BenchmarkStore } from '../../src-main/benchmarks.ts';
import { readBbq } from '../../src-worker/data/readers/bbq.ts';
import { readCrowsPairs } from '../../src-worker/data/readers/crows-pairs.ts';
import { readHotpotQa } from '../../src-worker/data/readers/hotpotqa.ts';
import { readQqp } from '../../src-worker/data/readers/qqp.ts';
import { readStereoSet } from '../../src-worker/data/readers/stereoset.ts';

const shared = path.join(import.meta.dirname, '..', '..', '..', 'shared', 'data');
/** The catalog's file name -> its copy in ../shared/data. */
const copies: Record<string, string> = {
  'crows_pairs_anonymized.csv': 'crows-pairs/crows_pairs_anonymized.csv',
  'race_test.json': 'stereoset/race_test.json',
  'religion_test.json': 'stereoset/religion_test.json',
  'Sexual_orientation.jsonl': 'bbq/Sexual_orientation.jsonl',
  'dev_subsampled.jsonl': 'hotpotqa/ircot_dev_subsampled.jsonl',
  'train.json': 'qqp/glue_pretrain_QQP_train.json',
};

let server: http.Server;
let base: string;
let root: string;
beforeAll(async () => {
  if (!existsSync(shared)) throw new Error(`${shared} is missing: test:shared needs ../shared`);
  root = mkdtempSync(path.join(os.tmpdir(), 'lw-benchmarks-shared-'));
  server = http.createServer((req, res) => {
    const copy = copies[decodeURIComponent(path.basename(req.url ?? ''))];
    if (!copy) return void res.writeHead(404).end();
    res.end(readFileSync(path.join(shared, copy)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  rmSync(root, { recursive: true, force: true });
});

describe('Get the data', () => {
  it('fetches all five benchmarks, checks every recorded SHA-256, and the suites read what is kept', async () => {
    const store = new BenchmarkStore({ paths: { dataDir: root }, urlOf: (_b, file) => `${base}/${path.basename(new URL(file.url).pathname)}` });
    const entries = await Promise.all(['crows-pairs', 'stereoset', 'bbq', 'hotpotqa', 'qqp'].map(async (id) => [id, (await store.fetch(id)).path] as const));
    const kept: Record<string, string> = {};
    for (const [id, where] of entries) {
      expect(where !== null && existsSync(where), id).toBe(true);
      kept[id] = where!;
    }
    expect(await readCrowsPairs(kept['crows-pairs']!)).toHaveLength(1508);
    expect((await readStereoSet(path.join(kept.stereoset!, 'religion_test.json'))).length).toBeGreaterThan(0);
    expect(await readBbq(kept.bbq!)).toHaveLength(864);
    expect((await readHotpotQa(kept.hotpotqa!)).length).toBe(500);
    expect(await readQqp(kept.qqp!)).toHaveLength(8999);
    expect(store.list().every((b) => b.path !== null)).toBe(true);
  });
});
