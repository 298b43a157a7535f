// Issue 15, findings 12 and 13: dispatch by own property; a too-large call answered with a JSON error;
// the Host header checked against DNS rebinding; the CSP (frame-ancestors 'none') and X-Frame-Options as
// headers; a closed connection cancels the call it was waiting for; and `serve` opens the browser through
// a private launch page, so the token is never on a command line.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { dispatch, type WorkbenchApi } from '../../src-shared/api.ts';
import { WS_PATH } from '../../src-shared/transport.ts';
import { callSignal } from '../../src-main/call-context.ts';
import { MAX_CALL_BYTES, startServer, type RunningServer } from '../../src-main/server/index.ts';
import { writeLaunchPage } from '../../src-main/server/launch-page.ts';

let root: string;
let server: RunningServer | null = null;
let seenSignal: AbortSignal | undefined;

const api = {
  system: {
    info: async () => ({ version: '1.2.3', mode: 'browser', dataDir: '/data', platform: 'test', installedBackends: ['cpu'] }),
  },
  runs: {
    // Waits until the caller goes away, as a long preview would.
    get: async () => {
      seenSignal = callSignal();
      await new Promise((resolve) => seenSignal?.addEventListener('abort', resolve));
      throw new Error('unreachable: the caller left');
    },
  },
  onRunEvent: () => () => undefined,
} as unknown as WorkbenchApi;

beforeEach(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'lw-server-hardening-'));
  mkdirSync(path.join(root, 'renderer'));
  writeFileSync(path.join(root, 'renderer', 'index.html'), '<!doctype html><title>workbench</title>');
});
afterEach(async () => {
  await server?.close();
  server = null;
  seenSignal = undefined;
  rmSync(root, { recursive: true, force: true });
});

function get(port: number, host: string): Promise<{ status: number; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/', method: 'GET', headers: { host } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

function open(s: RunningServer, headers: Record<string, string> = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${s.port}${WS_PATH}?token=${s.token}`, { headers });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

const reply = (ws: WebSocket) => new Promise<Record<string, any>>((resolve) => ws.once('message', (d) => resolve(JSON.parse(d.toString()))));

describe('API dispatch (finding 12)', () => {
  it.each(['toString', '__proto__', 'constructor', 'hasOwnProperty'])('refuses the inherited name %s as an unknown method', async (method) => {
    await expect(dispatch(api, method, undefined)).rejects.toMatchObject({ code: 'invalid_input', message: `Unknown API method "${method}"` });
  });

  it('answers a call over the size limit with a JSON error and keeps the connection', async () => {
    server = await startServer({ api, port: 0, rendererDir: path.join(root, 'renderer') });
    const ws = await open(server);
    const big = JSON.stringify({ id: 7, method: 'system.info', input: 'x'.repeat(MAX_CALL_BYTES + 10) });
    ws.send(big);
    const answer = await reply(ws);
    expect(answer).toMatchObject({ id: -1, ok: false, error: { code: 'invalid_input', message: expect.stringMatching(/at most 16 MB/) } });
    ws.send(JSON.stringify({ id: 8, method: 'system.info' }));
    expect(await reply(ws)).toMatchObject({ id: 8, ok: true });
    ws.close();
  });
});

describe('browser mode (finding 13)', () => {
  it('answers only to its own host names, with the CSP and no framing as headers', async () => {
    server = await startServer({ api, port: 0, rendererDir: path.join(root, 'renderer') });
    for (const host of [`127.0.0.1:${server.port}`, `localhost:${server.port}`]) {
      const ok = await get(server.port, host);
      expect(ok.status).toBe(200);
      expect(ok.headers['content-security-policy']).toMatch(/frame-ancestors 'none'/);
      expect(ok.headers['content-security-policy']).toMatch(/default-src 'self'/);
      expect(ok.headers['x-frame-options']).toBe('DENY');
    }
    // A rebound name (evil.example -> 127.0.0.1) reaches the socket but not the page or the API.
    expect((await get(server.port, `evil.example:${server.port}`)).status).toBe(403);
    await expect(open(server, { host: `evil.example:${server.port}` })).rejects.toThrow(/HTTP 403/);
  });

  it('aborts the signal of a call whose connection closed', async () => {
    server = await startServer({ api, port: 0, rendererDir: path.join(root, 'renderer') });
    const ws = await open(server);
    ws.send(JSON.stringify({ id: 1, method: 'runs.get', input: 'r1' }));
    while (!seenSignal) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(seenSignal.aborted).toBe(false);
    ws.close();
    await new Promise((resolve) => seenSignal!.addEventListener('abort', resolve));
    expect(seenSignal.aborted).toBe(true);
  });

  it('hands the browser a private launch page holding the URL, not the URL itself', () => {
    const url = 'http://127.0.0.1:4000/?token=abc123';
    const launch = writeLaunchPage(root, url);
    expect(launch.file.startsWith(path.join(root, 'launch'))).toBe(true);
    expect(launch.file).not.toContain('abc123');
    expect(readFileSync(launch.file, 'utf8')).toContain('url=http://127.0.0.1:4000/?token=abc123');
    expect(statSync(launch.file).mode & 0o077).toBe(0);
    expect(statSync(path.dirname(launch.file)).mode & 0o077).toBe(0);
    launch.remove();
    expect(() => statSync(launch.file)).toThrow();
  });
});
