// Issue 15's fuzz acceptance: 1,000 generated malformed inputs, each answered with a WorkbenchError whose
// code is not `internal`; afterwards the server still answers and the database passes integrity_check.
//   400 API calls over the real WebSocket server (wrong types for every method, garbage frames, unknown
//       and inherited method names), on the real services; the engine behind them is a stand-in that
//       answers every job with `failed`, since what the engine does with files is fuzzed below, in-process:
//   150 run configuration files (inline --config JSON: truncated, or one setting of the wrong type)
//   150 safetensors files (header length, JSON, dtypes, shapes and offsets corrupted)
//   150 model config.json files (a size or the model_type corrupted, on the GPT-2 and Llama fixtures)
//   150 JSONL / CSV datasets with malformed rows
// The generator is seeded: a failure names its case, and the same seed reproduces it.
import { EventEmitter } from 'node:events';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { apiMethods } from '../../src-shared/api.ts';
import { defaultRunConfig, RunConfigSchema } from '../../src-shared/config.ts';
import { validate, WorkbenchError, type ErrorCode } from '../../src-shared/errors.ts';
import { WS_PATH } from '../../src-shared/transport.ts';
import { createWorkbenchApi } from '../../src-main/api.ts';
import { readRunConfig } from '../../src-main/cli.ts';
import { resolvePaths } from '../../src-main/paths.ts';
import { startServer, type RunningServer } from '../../src-main/server/index.ts';
import { createServices, type Services } from '../../src-main/services.ts';
import { Store } from '../../src-main/store/index.ts';
import { parseInstructionJsonl } from '../../src-worker/data/dataset.ts';
import { parseUserTable } from '../../src-worker/data/readers/user-table.ts';
import { parseSafetensors, serializeSafetensors } from '../../src-worker/formats/safetensors.ts';
import { loadCausalLM } from '../../src-worker/formats/model-folder.ts';
import { mulberry32 } from '../../src-worker/rng.ts';

const random = mulberry32(15_015);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random.next() * items.length)]!;
const int = (n: number) => Math.floor(random.next() * n);

/** A value of a random JSON type (never undefined). */
function anyValue(depth = 0): unknown {
  const kinds = depth > 2 ? 6 : 8;
  switch (int(kinds)) {
    case 0:
      return null;
    case 1:
      return random.next() < 0.5;
    case 2:
      return pick([0, -1, 1.5, 1e308, -1e308, 2 ** 53 + 1, Number.MAX_SAFE_INTEGER]);
    case 3:
      return pick(['', ' ', 'x'.repeat(int(5000)), '\u0000', '../../etc/passwd', '{"a":', '__proto__', '\ud800']);
    case 4:
      return [];
    case 5:
      return {};
    case 6:
      return Array.from({ length: 1 + int(3) }, () => anyValue(depth + 1));
    default:
      return Object.fromEntries(Array.from({ length: 1 + int(3) }, () => [pick(['__proto__', 'constructor', 'a', 'path', 'id']), anyValue(depth + 1)]));
  }
}

/** Something that is not a non-empty string. */
const notAnId = () => pick([null, 0, true, [], {}, '', ['run-1'], { id: 'run-1' }] as unknown[]);
/** Something that is not an object. */
const notAnObject = () => pick([null, 0, -1, true, 'x', '', [], [{}], ['a', 'b']] as unknown[]);

/** The stand-in engine: every job fails as a user-data error would, so the front door is what is fuzzed here. */
class RefusingEngine extends EventEmitter {
  postMessage(message: { type: string }) {
    if (message.type === 'stop') return;
    queueMicrotask(() => this.emit('message', { type: 'failed', error: { code: 'invalid_input', message: `fuzz stand-in refused ${message.type}` } }));
  }
  ref() {}
  unref() {}
  async terminate() {
    queueMicrotask(() => this.emit('exit', 0));
    return 0;
  }
}

let root: string;
let store: Store;
let services: Services;
let server: RunningServer;
let ws: WebSocket;
let nextId = 1;
const pending = new Map<number, (reply: Record<string, any>) => void>();
const unmatched: Record<string, any>[] = [];

beforeAll(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), 'lw-fuzz-'));
  const paths = resolvePaths({ dataDir: path.join(root, 'data') });
  store = Store.open(paths.dbFile);
  services = createServices({ store, paths, createWorker: () => new RefusingEngine() as unknown as Worker });
  const api = createWorkbenchApi({ ...services, paths, mode: 'browser' });
  server = await startServer({ api, port: 0, rendererDir: path.join(root, 'no-renderer') });
  ws = new WebSocket(`ws://127.0.0.1:${server.port}${WS_PATH}?token=${server.token}`);
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  ws.on('message', (data) => {
    const reply = JSON.parse(data.toString()) as Record<string, any>;
    if (!('id' in reply)) return;
    const waiting = pending.get(reply.id);
    if (waiting) {
      pending.delete(reply.id);
      waiting(reply);
    } else {
      unmatched.push(reply);
    }
  });
});
afterAll(async () => {
  ws?.close();
  await server?.close();
  await services?.close();
  store?.close();
  rmSync(root, { recursive: true, force: true });
});

function call(method: unknown, input: unknown): Promise<Record<string, any>> {
  const id = nextId++;
  return new Promise((resolve) => {
    pending.set(id, resolve);
    ws.send(JSON.stringify({ id, method, input }));
  });
}

/** A raw frame that is not a well-formed call: its reply carries id -1. */
function sendRaw(frame: string | Buffer): Promise<Record<string, any>> {
  return new Promise((resolve) => {
    const before = unmatched.length;
    ws.send(frame);
    const poll = setInterval(() => {
      if (unmatched.length > before) {
        clearInterval(poll);
        resolve(unmatched.splice(before, 1)[0]!);
      }
    }, 2);
  });
}

const inputKind: Record<string, 'none' | 'id' | 'object'> = Object.fromEntries(
  apiMethods.map((m) => [
    m,
    ['system.info', 'system.usage', 'catalog.list', 'runs.list', 'adapters.list', 'datasets.list', 'evals.list', 'benchmarks.list'].includes(m)
      ? 'none'
      : /\.(get|stop|resume|metrics|remove|delete|result|fetch)$/.test(m)
        ? 'id'
        : 'object',
  ]),
);

function malformedCall(): { method: unknown; input: unknown } {
  const roll = random.next();
  if (roll < 0.08)
    return { method: pick(['toString', '__proto__', 'constructor', 'hasOwnProperty', 'runs', 'runs.', '.list', 'runs.start.x', '']), input: anyValue() };
  if (roll < 0.12) return { method: anyValue(), input: anyValue() };
  const method = pick(apiMethods);
  const kind = inputKind[method];
  if (kind === 'none') return { method, input: anyValue() };
  if (kind === 'id') return { method, input: notAnId() };
  return { method, input: notAnObject() };
}

const badFrames = (): string | Buffer =>
  pick<() => string | Buffer>([
    () => '{"id": 1, "method": ',
    () => 'not json at all',
    () => JSON.stringify({ method: 'runs.list' }),
    () => JSON.stringify({ id: 'seven', method: 'runs.list' }),
    () => JSON.stringify({ id: 1.5, method: 'runs.list' }),
    () => JSON.stringify([1, 'runs.list']),
    () => '[]'.padStart(5000, '['),
    () => Buffer.from([0, 1, 2, 255]),
  ])();

function expectWorkbenchError(error: unknown, label: string): void {
  expect(error, label).toBeInstanceOf(WorkbenchError);
  expect((error as WorkbenchError).code, `${label}: ${(error as Error).message}`).not.toBe('internal');
}

function mustThrow(label: string, work: () => unknown): Promise<void> {
  return Promise.resolve()
    .then(work)
    .then(
      (value) => {
        (value as { dispose?: () => void } | undefined)?.dispose?.();
        expect.fail(`${label}: a malformed input was accepted`);
      },
      (error: unknown) => expectWorkbenchError(error, label),
    );
}

describe('fuzz: 1,000 malformed inputs', () => {
  it('answers 400 malformed API calls and frames with non-internal WorkbenchErrors, and still answers after', async () => {
    const codes = new Map<ErrorCode, number>();
    for (let k = 0; k < 400; k++) {
      const reply =
        k % 10 === 9
          ? await sendRaw(badFrames())
          : await (async () => {
              const { method, input } = malformedCall();
              return call(method, input);
            })();
      expect(reply.ok, `case ${k}: ${JSON.stringify(reply).slice(0, 300)}`).toBe(false);
      expect(reply.error.code, `case ${k}: ${reply.error.message}`).not.toBe('internal');
      codes.set(reply.error.code, (codes.get(reply.error.code) ?? 0) + 1);
    }
    expect(codes.get('invalid_input')).toBeGreaterThan(300);
    expect(await call('system.info', undefined)).toMatchObject({ ok: true });
    expect(await call('runs.list', undefined)).toMatchObject({ ok: true, output: [] });
    expect(store.db.pragma('integrity_check', { simple: true })).toBe('ok');
  });

  it('refuses 150 malformed run configurations', async () => {
    const valid = defaultRunConfig() as unknown as Record<string, Record<string, unknown>>;
    const leaves: [string, string | null][] = [
      ['name', null],
      ['model', null],
      ['dataset', null],
      ['method', null],
      ['backend', null],
    ];
    for (const section of ['training', 'lora'] as const) for (const key of Object.keys(valid[section]!)) leaves.push([section, key]);
    for (let k = 0; k < 150; k++) {
      const text = JSON.stringify(valid);
      if (k % 5 === 0) {
        await mustThrow(`config ${k} (truncated)`, () => readRunConfig(text.slice(0, 1 + int(text.length - 2))));
        continue;
      }
      const config = structuredClone(valid);
      const [section, key] = pick(leaves);
      const holder = key === null ? (config as Record<string, unknown>) : config[section]!;
      const name = key ?? section;
      const current = holder[name];
      // A value of another JSON type than the setting's own: never valid.
      holder[name] =
        typeof current === 'number'
          ? pick(['12', null, [], {}, true])
          : typeof current === 'string'
            ? pick([12, null, [], {}, false])
            : typeof current === 'boolean'
              ? pick(['yes', 1, null, []])
              : current === null
                ? pick(['x', true, [], {}]) // a nullable number (training.microBatchSize): null and numbers are valid
                : pick([12, 'x', true, null]);
      await mustThrow(`config ${k} (${section}${key ? `.${key}` : ''} = ${JSON.stringify(holder[name])})`, () =>
        validate(RunConfigSchema, readRunConfig(JSON.stringify(config)).config, 'run configuration'),
      );
    }
  });

  it('refuses 150 malformed safetensors files with format_invalid', async () => {
    const tensors = new Map([
      ['w', { shape: [2, 3], data: new Float32Array(6).fill(1) }],
      ['b', { shape: [3], data: new Float32Array(3) }],
    ]);
    const good = serializeSafetensors(tensors, { format: 'pt' });
    const headerLength = Number(new DataView(good.buffer, good.byteOffset).getBigUint64(0, true));
    const header = JSON.parse(Buffer.from(good.subarray(8, 8 + headerLength)).toString()) as Record<string, any>;
    const build = (json: string, data = good.subarray(8 + headerLength)) => {
      const head = Buffer.from(json);
      const prefix = Buffer.alloc(8);
      prefix.writeBigUInt64LE(BigInt(head.length));
      return new Uint8Array(Buffer.concat([prefix, head, data]));
    };
    const corruptions: (() => Uint8Array)[] = [
      () => good.subarray(0, int(8)),
      () => good.subarray(0, 8 + int(headerLength)),
      () => good.subarray(0, good.length - 1 - int(20)),
      () => {
        const b = new Uint8Array(good);
        new DataView(b.buffer).setBigUint64(0, BigInt(2 ** 40 + int(1000)), true);
        return b;
      },
      () => {
        const b = new Uint8Array(good);
        new DataView(b.buffer).setBigUint64(0, 0n, true);
        return b;
      },
      () => build(JSON.stringify(header).slice(0, -1 - int(10))),
      () => build(JSON.stringify({ ...header, w: { ...header.w, dtype: pick(['F64', 'I8', 'Q4', 7, null]) } })),
      () => build(JSON.stringify({ ...header, w: { ...header.w, shape: pick([[2, -3], [2, 'x'], [99, 99], null, [1.5, 4]]) } })),
      () => build(JSON.stringify({ ...header, w: { ...header.w, data_offsets: pick([[0, 999], [24, 0], [-4, 8], ['a', 'b'], [0]]) } })),
      // b ([0, 12]) moved into w's bytes ([12, 36]).
      () => build(JSON.stringify({ ...header, b: { ...header.b, data_offsets: [12, 24] } })),
      () => build(JSON.stringify([1, 2, 3])),
      () => build(JSON.stringify({ ...header, __metadata__: pick([[1], 'x', { format: 7 }]) })),
    ];
    for (let k = 0; k < 150; k++) {
      const which = k % corruptions.length;
      await mustThrow(`safetensors ${k} (corruption ${which})`, () => parseSafetensors(corruptions[which]!(), `case-${k}.safetensors`));
    }
  });

  it('refuses 150 corrupted model config.json files when loading the model', async () => {
    const fixtures = path.join(import.meta.dirname, '..', 'fixtures');
    const families = [
      { dir: path.join(fixtures, 'gpt2-tiny'), keys: ['n_layer', 'n_embd', 'n_head', 'vocab_size', 'n_positions', 'model_type'] },
      {
        dir: path.join(fixtures, 'llama-tiny'),
        keys: ['hidden_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'intermediate_size', 'vocab_size', 'model_type'],
      },
    ];
    for (let k = 0; k < 150; k++) {
      const family = families[k % families.length]!;
      const dir = path.join(root, `model-${k}`);
      mkdirSync(dir);
      for (const file of ['model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(path.join(family.dir, file), path.join(dir, file));
      const config = JSON.parse(readFileSync(path.join(family.dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      const key = pick(family.keys);
      const value = config[key];
      if (k % 10 === 0) {
        writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config).slice(0, 1 + int(40)));
      } else {
        config[key] =
          key === 'model_type' ? pick([7, null, '', 'gpt-5', ['gpt2']]) : pick([String(value), 0, -2, 1.5, 1e12, (value as number) + 1, [value], { value }]);
        writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
      }
      await mustThrow(`config.json ${k} (${key} = ${JSON.stringify(config[key])})`, () => loadCausalLM(dir));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses 150 datasets with malformed JSONL or CSV rows, naming their lines', async () => {
    const goodJsonl = (n: number) => Array.from({ length: n }, (_, i) => JSON.stringify({ prompt: `q${i}`, completion: `a${i}` }));
    const badJsonl = () =>
      pick([
        '{"prompt": "q", "completion": ',
        '{"prompt": "q"}',
        '{"prompt": 1, "completion": "a"}',
        '{"prompt": "q", "completion": ""}',
        '[1, 2]',
        '"just a string"',
        '{"prompt": "q", "completion": null}',
        '{"text": 5}',
        'nan',
      ]);
    const goodCsv = (n: number) => Array.from({ length: n }, (_, i) => `q${i},a${i}`);
    const badCsv = () => pick(['"unclosed,a', 'only-one-cell', 'q,', 'q,"a""b', '"a"x,b']);
    for (let k = 0; k < 150; k++) {
      const rows = 1 + int(5);
      const at = int(rows + 1);
      if (k % 2 === 0) {
        const lines = goodJsonl(rows);
        lines.splice(at, 0, badJsonl());
        await mustThrow(`jsonl ${k}`, () => parseInstructionJsonl(lines.join('\n'), `case-${k}.jsonl`));
      } else {
        const lines = goodCsv(rows);
        lines.splice(at, 0, badCsv());
        await mustThrow(`csv ${k}`, () =>
          parseUserTable(['prompt,completion', ...lines].join('\n'), `case-${k}.csv`, { prompt: 'prompt', completion: 'completion' }, { format: 'csv' }),
        );
      }
    }
  });
});
