// Browser mode: one loopback HTTP server serves the renderer and, at WS_PATH, a WebSocket that
// carries WorkbenchApi calls and run events. A per-launch token in the WebSocket URL keeps other
// local pages and users' processes from driving the workbench; the Host header check keeps a page
// of another site whose name was rebound to 127.0.0.1 (DNS rebinding) from even reading the UI.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { dispatch, type WorkbenchApi } from '../../src-shared/api.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { WireCallSchema, WS_PATH, type WireReply } from '../../src-shared/transport.ts';
import { withCallSignal } from '../call-context.ts';
import { findAppRoot } from '../paths.ts';
import { serveRenderer } from './static.ts';

export interface ServerOptions {
  api: WorkbenchApi;
  /** 0 picks a free port. */
  port?: number;
  host?: string;
  /** Defaults to out/renderer of this package. */
  rendererDir?: string;
  /** Tests pass a fixed token; otherwise a fresh one per launch. */
  token?: string;
}

export interface RunningServer {
  /** The page to open, with the token the renderer hands on to the WebSocket. */
  url: string;
  origin: string;
  port: number;
  token: string;
  close(): Promise<void>;
}

function sameToken(given: string | null, expected: Buffer): boolean {
  if (given === null) return false;
  const buffer = Buffer.from(given);
  // timingSafeEqual needs equal lengths; the length of a 48-hex-digit token is no secret.
  return buffer.length === expected.length && timingSafeEqual(buffer, expected);
}

/** The largest call answered; a bigger one gets a JSON error (up to twice this, then the socket closes with 1009). */
export const MAX_CALL_BYTES = 16 * 1024 * 1024;

function reject(socket: Duplex, status: 401 | 403 | 404, reason: string): void {
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${reason.length}\r\n\r\n${reason}`);
}

function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const host = options.host ?? '127.0.0.1';
  const token = options.token ?? randomBytes(24).toString('hex');
  const expected = Buffer.from(token);
  const rendererDir = options.rendererDir ?? path.join(findAppRoot(), 'out', 'renderer');
  const wildcard = host === '0.0.0.0' || host === '::';
  let allowedOrigins = new Set<string>();

  let allowedHosts = new Set<string>();
  // On a wildcard address the user reaches the machine by any name; the token is the only guard there.
  const knownHost = (req: IncomingMessage) => wildcard || allowedHosts.has((req.headers.host ?? '').toLowerCase());

  const server = createServer((req, res) => {
    if (!knownHost(req)) {
      res.writeHead(403, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' });
      return void res.end(`Forbidden: this server answers only to ${[...allowedHosts][0]}.`);
    }
    serveRenderer(rendererDir, req, res);
  });
  // Room for a JSON error on a too-large call (answer() checks MAX_CALL_BYTES), bounded all the same.
  const wss = new WebSocketServer({ noServer: true, maxPayload: 2 * MAX_CALL_BYTES });

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (!knownHost(req)) return reject(socket, 403, 'Forbidden');
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== WS_PATH) return reject(socket, 404, 'Not Found');
    if (!sameToken(url.searchParams.get('token'), expected)) return reject(socket, 401, 'Unauthorized');
    // Browsers always send Origin; a page from another origin must not reach the API even with the token.
    const origin = req.headers.origin;
    // On a wildcard address the page's origin is whatever name the user reached the machine by.
    const ownOrigin = allowedOrigins.has(origin ?? '') || (wildcard && origin === `http://${req.headers.host}`);
    if (origin !== undefined && !ownOrigin) return reject(socket, 403, 'Forbidden');
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });

  wss.on('connection', (ws: WebSocket) => {
    const unsubscribe = options.api.onRunEvent((event) => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ event }));
    });
    // Jobs still working for this page (a preview, a generation) end when it goes away.
    const connection = new AbortController();
    const gone = () => {
      unsubscribe();
      connection.abort();
    };
    ws.on('close', gone);
    ws.on('error', gone);
    ws.on('message', (data: Buffer, isBinary) => {
      void withCallSignal(connection.signal, () => answer(ws, data, isBinary));
    });
  });

  async function answer(ws: WebSocket, data: Buffer, isBinary: boolean): Promise<void> {
    let id = -1;
    let reply: WireReply;
    try {
      if (isBinary) throw new WorkbenchError('invalid_input', 'Calls are JSON text messages, not binary.');
      if (data.length > MAX_CALL_BYTES) {
        throw new WorkbenchError(
          'invalid_input',
          `A call may be at most ${MAX_CALL_BYTES / 1024 / 1024} MB of JSON; this one is ${(data.length / 1024 / 1024).toFixed(1)} MB. Send a file path instead of the file's contents.`,
        );
      }
      const text = data.toString();
      let raw: unknown;
      try {
        raw = JSON.parse(text);
      } catch {
        throw new WorkbenchError('invalid_input', 'A call must be JSON: {"id": number, "method": string, "input": ...}.');
      }
      if (raw && typeof raw === 'object' && Number.isInteger((raw as { id?: unknown }).id)) id = (raw as { id: number }).id;
      const parsed = WireCallSchema.safeParse(raw);
      if (!parsed.success) throw new WorkbenchError('invalid_input', 'A call must be {"id": integer, "method": string, "input": ...}.');
      reply = { id, ok: true, output: await dispatch(options.api, parsed.data.method, parsed.data.input) };
    } catch (error) {
      reply = { id, ok: false, error: WorkbenchError.from(error).toJSON() };
    }
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(reply));
  }

  await new Promise<void>((resolve, rejectListen) => {
    server.once('error', rejectListen);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', rejectListen);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const origin = `http://${hostForUrl(host)}:${port}`;
  allowedOrigins = new Set([origin]);
  allowedHosts = new Set([`${hostForUrl(host)}:${port}`.toLowerCase()]);
  // The same loopback server reached under its other loopback names is still its own origin.
  if (['127.0.0.1', 'localhost', '::1'].includes(host)) {
    for (const name of ['127.0.0.1', 'localhost', '[::1]']) {
      allowedOrigins.add(`http://${name}:${port}`);
      allowedHosts.add(`${name}:${port}`);
    }
  }

  return {
    url: `${origin}/?token=${token}`,
    origin,
    port,
    token,
    close: async () => {
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
