// The one WorkbenchApi the app uses: Electron's preload bridge when present, else a WebSocket client to
// the loopback server that `lora-workbench serve` started (browser mode).
import { createApiClient, type WorkbenchApi } from '../../src-shared/api.ts';
import { WS_PATH } from '../../src-shared/transport.ts';
import { connection } from './connection.svelte.ts';
import { SocketTransport } from './socket-transport.ts';

declare global {
  interface Window {
    /** Set by src-main/electron/preload.ts through contextBridge. */
    workbench?: WorkbenchApi;
  }
}

const TOKEN_KEY = 'lora-workbench.token';

/**
 * The server prints a URL with ?token=…; the token is kept for this tab only (sessionStorage) and taken out of
 * the address bar so it does not end up in bookmarks, history or screenshots.
 */
function takeToken(): string | null {
  const url = new URL(location.href);
  const fromUrl = url.searchParams.get('token');
  if (fromUrl) {
    sessionStorage.setItem(TOKEN_KEY, fromUrl);
    url.searchParams.delete('token');
    history.replaceState(history.state, '', url.pathname + url.search + url.hash);
    return fromUrl;
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

function socketUrl(token: string): string {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${location.host}${WS_PATH}?token=${encodeURIComponent(token)}`;
}

/**
 * Asked after the socket closed without ever opening. The server refuses a wrong token with HTTP 401 on the
 * upgrade, which a browser reports exactly like a server that is down; so: if the same server still answers
 * plain HTTP, it was up and refused us (the usual cause: a token from an earlier launch).
 */
async function isTokenRejected(): Promise<boolean> {
  try {
    await fetch(`${location.origin}/`, { method: 'HEAD', cache: 'no-store' });
    return true;
  } catch {
    return false;
  }
}

function connect(): WorkbenchApi {
  const overHttp = location.protocol === 'http:' || location.protocol === 'https:';
  if (!overHttp) connection.update({ kind: 'no-bridge' });
  const token = overHttp ? takeToken() : null;
  const transport = new SocketTransport({
    url: token === null ? null : socketUrl(token),
    onState: (state) => connection.update(state),
    isTokenRejected,
  });
  if (overHttp) transport.start();
  return createApiClient(transport.invoke, transport.subscribe);
}

export const workbench: WorkbenchApi = window.workbench ?? connect();
