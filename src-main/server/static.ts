// Serves the built renderer (out/renderer) read-only: no listing, nothing outside the folder.
import { createReadStream, existsSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';

const contentTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
  '.wasm': 'application/wasm',
  '.txt': 'text/plain; charset=utf-8',
};

export function contentTypeFor(file: string): string {
  return contentTypes[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
}

const missingRendererPage = (rendererDir: string) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lora-workbench: renderer not built</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 4rem auto; line-height: 1.5">
<h1>The workbench UI has not been built yet</h1>
<p>The server is running, but <code>${escapeHtml(rendererDir)}</code> does not exist.</p>
<p>Build it with <code>npm run build:renderer</code> in the lora-workbench folder, then reload this page
(or use <code>npm start</code>, which builds it for you).</p>
</body></html>
`;

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * Sent with every response: the renderer's CSP as a header (a meta tag cannot say frame-ancestors), and
 * no framing by any page, so another site cannot overlay the workbench and steer clicks into it.
 */
export const SECURITY_HEADERS = {
  'Content-Security-Policy':
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'X-Frame-Options': 'DENY',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
} as const;

function send(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

/**
 * Maps a URL path to a file inside `root`, or null when it would leave it. Decoding happens first,
 * so %2e%2e and encoded slashes are caught by the same containment check.
 */
export function resolveInside(root: string, urlPath: string): string | null {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (decoded.includes('\0')) return null;
  const file = path.resolve(root, `.${path.posix.normalize(`/${decoded.replace(/\\/g, '/')}`)}`);
  const relative = path.relative(root, file);
  if (relative.startsWith('..') || path.isAbsolute(relative)) return null;
  return file;
}

export function serveRenderer(rendererDir: string, req: IncomingMessage, res: ServerResponse): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    return send(res, 405, 'Method not allowed');
  }
  const indexFile = path.join(rendererDir, 'index.html');
  if (!existsSync(indexFile)) return send(res, 503, missingRendererPage(rendererDir), contentTypes['.html']);

  const urlPath = new URL(req.url ?? '/', 'http://localhost').pathname;
  // The raw path is checked too: URL parsing already folds "/../", but not every client sends a clean one.
  if (/(^|[\\/])\.\.([\\/]|$)/.test(decodeSafe((req.url ?? '').split('?')[0]!))) return send(res, 403, 'Forbidden');
  let file = resolveInside(rendererDir, urlPath);
  if (!file) return send(res, 403, 'Forbidden');
  if (existsSync(file) && statSync(file).isDirectory()) file = path.join(file, 'index.html');
  if (!existsSync(file) || !statSync(file).isFile()) {
    // Extension-less paths are client-side routes of the single-page app.
    if (path.extname(urlPath) === '') file = indexFile;
    else return send(res, 404, 'Not found');
  }
  const stat = statSync(file);
  res.writeHead(200, {
    ...SECURITY_HEADERS,
    'Content-Type': contentTypeFor(file),
    'Content-Length': stat.size,
    // index.html names hashed assets; it must be re-read after every build.
    'Cache-Control': file === indexFile ? 'no-cache' : 'public, max-age=3600',
  });
  if (req.method === 'HEAD') return void res.end();
  createReadStream(file).pipe(res);
}

function decodeSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
