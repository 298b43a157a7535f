import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { RunEvent, RunEventListener, WorkbenchApi } from '../../src-shared/api.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { WS_PATH } from '../../src-shared/transport.ts';
import { resolveInside } from '../../src-main/server/static.ts';
import { startServer, type RunningServer } from '../../src-main/server/index.ts';

let root: string;
let rendererDir: string;
let server: RunningServer | null = null;
const listeners = new Set<RunEventListener>();

/** Only what these tests call; dispatch validates the outputs, so they must be real-shaped. */
const api = {
  system: {
    info: async () => ({ version: '1.2.3', mode: 'browser', dataDir: '/data', platform: 'test', installedBackends: ['cpu'] }),
  },
  runs: {
    get: async (id: string) => {
      throw new WorkbenchError('not_found', `No run with id "${id}".`, { id });
    },
  },
  onRunEvent: (listener: RunEventListener) => {
    listeners.add(listener);
    return () => listeners.delete(listener);
  },
} as unknown as WorkbenchApi;

beforeEach(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'lw-server-'));
  rendererDir = path.join(root, 'renderer');
  mkdirSync(path.join(rendererDir, 'assets'), { recursive: true });
  writeFileSync(path.join(rendererDir, 'index.html'), '<!doctype html><title>workbench</title>');
  writeFileSync(path.join(rendererDir, 'assets', 'app.js'), 'console.log(1)');
  writeFileSync(path.join(rendererDir, 'assets', 'app.css'), 'body{}');
  writeFileSync(path.join(root, 'secret.txt'), 'TOP SECRET');
});
afterEach(async () => {
  await server?.close();
  server = null;
  listeners.clear();
  rmSync(root, { recursive: true, force: true });
});

/** A raw request: the path is sent exactly as written, as a hostile client would. */
function get(port: number, rawPath: string): Promise<{ status: number; type: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: rawPath, method: 'GET' }, (res) => {
      let body = '';
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, type: res.headers['content-type'], body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function connect(url: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

function nextMessage(ws: WebSocket): Promise<Record<string, unknown>> {
  return new Promise((resolve) => ws.once('message', (data) => resolve(JSON.parse(data.toString()) as Record<string, unknown>)));
}

const wsUrl = (s: RunningServer, token: string | null) => `ws://127.0.0.1:${s.port}${WS_PATH}${token === null ? '' : `?token=${token}`}`;

describe('static files', () => {
  it('serves index.html for / and assets with their content types', async () => {
    server = await startServer({ api, port: 0, rendererDir });
    expect(server.url).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${server.port}/\\?token=[0-9a-f]{48}$`));
    const index = await get(server.port, '/');
    expect(index).toMatchObject({ status: 200, type: 'text/html; charset=utf-8', body: '<!doctype html><title>workbench</title>' });
    expect((await get(server.port, '/assets/app.js')).type).toBe('text/javascript; charset=utf-8');
    expect((await get(server.port, '/assets/app.css')).type).toBe('text/css; charset=utf-8');
    expect((await get(server.port, '/assets/missing.js')).status).toBe(404);
    expect((await get(server.port, '/runs/123')).body).toContain('<title>workbench</title>');
  });

  it('never serves a file outside the renderer folder', async () => {
    server = await startServer({ api, port: 0, rendererDir });
    for (const attempt of [
      '/../secret.txt',
      '/assets/../../secret.txt',
      '/%2e%2e/secret.txt',
      '/assets/..%2f..%2fsecret.txt',
      '/..%5csecret.txt',
      `/${encodeURIComponent(path.join(root, 'secret.txt'))}`,
    ]) {
      const res = await get(server.port, attempt);
      expect(res.status, attempt).not.toBe(200);
      expect(res.body, attempt).not.toContain('TOP SECRET');
    }
    expect(resolveInside(rendererDir, '/../secret.txt')).toBe(path.join(rendererDir, 'secret.txt'));
    expect(resolveInside(rendererDir, '/%E0%A4%A')).toBeNull();
  });

  it('explains how to build the renderer when it is missing', async () => {
    server = await startServer({ api, port: 0, rendererDir: path.join(root, 'not-built') });
    const res = await get(server.port, '/');
    expect(res.status).toBe(503);
    expect(res.body).toContain('npm run build:renderer');
  });
});

describe('WebSocket', () => {
  it('rejects a connection without the token or with a wrong one', async () => {
    server = await startServer({ api, port: 0, rendererDir });
    await expect(connect(wsUrl(server, null))).rejects.toThrow('HTTP 401');
    await expect(connect(wsUrl(server, 'f'.repeat(48)))).rejects.toThrow('HTTP 401');
    await expect(connect(wsUrl(server, `${server.token}0`))).rejects.toThrow('HTTP 401');
  });

  it('rejects a page from another origin even with the token', async () => {
    server = await startServer({ api, port: 0, rendererDir });
    await expect(connect(wsUrl(server, server.token), { Origin: 'http://evil.example' })).rejects.toThrow('HTTP 403');
    const ws = await connect(wsUrl(server, server.token), { Origin: server.origin });
    ws.close();
  });

  it('round-trips calls, errors and events', async () => {
    server = await startServer({ api, port: 0, rendererDir });
    const ws = await connect(wsUrl(server, server.token));

    ws.send(JSON.stringify({ id: 1, method: 'system.info' }));
    expect(await nextMessage(ws)).toEqual({ id: 1, ok: true, output: expect.objectContaining({ version: '1.2.3', installedBackends: ['cpu'] }) });

    ws.send(JSON.stringify({ id: 2, method: 'runs.get', input: 'r1' }));
    expect(await nextMessage(ws)).toEqual({ id: 2, ok: false, error: { code: 'not_found', message: 'No run with id "r1".', details: { id: 'r1' } } });

    ws.send(JSON.stringify({ id: 3, method: 'runs.get', input: 42 }));
    expect(await nextMessage(ws)).toMatchObject({ id: 3, ok: false, error: { code: 'invalid_input' } });

    ws.send(JSON.stringify({ id: 4, method: 'nope.nothing' }));
    expect(await nextMessage(ws)).toMatchObject({ id: 4, ok: false, error: { code: 'invalid_input', message: expect.stringMatching(/Unknown API method/) } });

    ws.send('not json');
    expect(await nextMessage(ws)).toMatchObject({ id: -1, ok: false, error: { code: 'invalid_input' } });

    const event: RunEvent = { kind: 'log', runId: 'r1', level: 'info', message: 'hello' };
    const arrived = nextMessage(ws);
    for (const listener of listeners) listener(event);
    expect(await arrived).toEqual({ event });

    ws.close();
    await new Promise((r) => ws.once('close', r));
    await new Promise((r) => setTimeout(r, 20));
    expect(listeners.size).toBe(0);
  });
});
