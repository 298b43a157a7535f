// Electron's security checklist (electronjs.org/docs/latest/tutorial/security) as plain functions over the
// few parts of webContents they touch, so that they are tested without the Electron binary
// (test/unit/electron-security.test.ts) and main.ts only wires them:
//   - the renderer is served from the custom app:// scheme (not file://, which would give every local file
//     the page's origin), and a path outside the renderer folder is refused;
//   - navigation, redirects and frame navigation away from it, new windows and <webview>s are refused;
//   - permission requests (camera, notifications, …) are all denied;
//   - links open in the system browser only for https URLs on an allow-list;
//   - IPC is answered only for the main frame of a workbench window showing the app;
//   - ELECTRON_RENDERER_URL (electron-vite's dev server) is honoured only in an unpackaged app, and only on loopback.
import path from 'node:path';
import { resolveInside } from '../server/static.ts';

export const APP_SCHEME = 'app';
export const APP_HOST = 'workbench';
export const APP_ORIGIN = `${APP_SCHEME}://${APP_HOST}`;

/** Hosts the workbench links to (model hubs, the benchmarks' official sources, the project). */
export const EXTERNAL_HOSTS = [
  'huggingface.co',
  'github.com',
  'raw.githubusercontent.com',
  'arxiv.org',
  'aclanthology.org',
  'hotpotqa.github.io',
  'gluebenchmark.com',
  'www.electronjs.org',
  'pytorch.org',
];

/** The page the window loads: the dev server in an unpackaged app when it is on loopback, else the app scheme. */
export function rendererEntry(options: { packaged: boolean; devServer: string | undefined }): string {
  if (!options.packaged && options.devServer) {
    try {
      const url = new URL(options.devServer);
      if (url.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) return url.href;
    } catch {
      // Not a URL: the packaged renderer is loaded instead.
    }
  }
  return `${APP_ORIGIN}/index.html`;
}

/** True for a URL of the renderer itself (the app scheme, or the page the window was given). */
export function isAppUrl(url: string, entry: string): boolean {
  try {
    const target = new URL(url);
    if (target.protocol === `${APP_SCHEME}:`) return target.host === APP_HOST;
    return target.origin === new URL(entry).origin && new URL(entry).protocol !== `${APP_SCHEME}:`;
  } catch {
    return false;
  }
}

/** A link the system browser may open: https, on an allowed host (or a subdomain of one). */
export function isAllowedExternalUrl(url: string): boolean {
  try {
    const target = new URL(url);
    if (target.protocol !== 'https:' || target.username || target.password) return false;
    return EXTERNAL_HOSTS.some((host) => target.hostname === host || target.hostname.endsWith(`.${host}`));
  } catch {
    return false;
  }
}

/** The file an app:// request names inside the renderer folder, or null (outside it, another host). */
export function appRequestFile(rendererDir: string, url: string): string | null {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    return null;
  }
  if (target.protocol !== `${APP_SCHEME}:` || target.host !== APP_HOST) return null;
  const file = resolveInside(rendererDir, target.pathname === '/' ? '/index.html' : target.pathname);
  // Extension-less paths are the single-page app's routes.
  return file && path.extname(file) === '' ? path.join(rendererDir, 'index.html') : file;
}

interface SenderFrame {
  url: string;
  parent: unknown;
}

/** IPC is answered for the main frame of one of our windows, showing the app: never for an iframe or another page. */
export function isTrustedSender(sender: unknown, senderFrame: SenderFrame | null | undefined, ownContents: readonly unknown[], entry: string): boolean {
  if (!ownContents.includes(sender)) return false;
  if (!senderFrame || senderFrame.parent !== null) return false;
  return isAppUrl(senderFrame.url, entry);
}

interface PreventableEvent {
  preventDefault(): void;
}

/** The parts of Electron's webContents (and its session) that hardenContents uses. */
export interface HardenableContents {
  on(event: 'will-navigate' | 'will-redirect', listener: (event: PreventableEvent, url: string) => void): unknown;
  on(event: 'will-frame-navigate', listener: (event: PreventableEvent & { url: string }) => void): unknown;
  on(event: 'will-attach-webview', listener: (event: PreventableEvent) => void): unknown;
  setWindowOpenHandler(handler: (details: { url: string }) => { action: 'deny' }): void;
  session: {
    setPermissionRequestHandler(handler: (contents: unknown, permission: string, callback: (granted: boolean) => void) => void): void;
    setPermissionCheckHandler(handler: () => boolean): void;
  };
}

/** Applies the checklist to one window's webContents. `openExternal` is shell.openExternal. */
export function hardenContents(contents: HardenableContents, options: { entry: string; openExternal: (url: string) => unknown }): void {
  const stayInApp = (event: PreventableEvent, url: string) => {
    if (!isAppUrl(url, options.entry)) event.preventDefault();
  };
  contents.on('will-navigate', stayInApp);
  contents.on('will-redirect', stayInApp);
  contents.on('will-frame-navigate', (event) => stayInApp(event, event.url));
  contents.on('will-attach-webview', (event) => event.preventDefault());
  contents.setWindowOpenHandler(({ url }) => {
    if (isAllowedExternalUrl(url)) void options.openExternal(url);
    return { action: 'deny' };
  });
  contents.session.setPermissionRequestHandler((_contents, _permission, callback) => callback(false));
  contents.session.setPermissionCheckHandler(() => false);
}
