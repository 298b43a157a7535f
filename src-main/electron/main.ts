// Electron main process: app lifecycle, one window, and the IPC bridge to the WorkbenchApi.
// No logic of its own: every call goes through `dispatch`, every run event is forwarded as is.
import { app, BrowserWindow, dialog, ipcMain, net, protocol, shell, type IpcMainInvokeEvent } from 'electron';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { dispatch } from '../../src-shared/api.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { IPC_CALL_CHANNEL, IPC_EVENT_CHANNEL, IPC_PICK_CHANNEL, PickPathRequestSchema } from '../../src-shared/transport.ts';
import { createWorkbenchApi } from '../api.ts';
import { withCallSignal } from '../call-context.ts';
import { resolvePaths } from '../paths.ts';
import { createServices } from '../services.ts';
import { SECURITY_HEADERS } from '../server/static.ts';
import { Store } from '../store/index.ts';
import { APP_SCHEME, appRequestFile, hardenContents, isTrustedSender, rendererEntry } from './security.ts';

const here = path.dirname(fileURLToPath(import.meta.url));

function dataDirArgument(): string | undefined {
  // Electron adds its own switches to argv; only ours is read, the rest ignored.
  const { values } = parseArgs({ args: process.argv.slice(1), options: { 'data-dir': { type: 'string' } }, strict: false, allowPositionals: true });
  return typeof values['data-dir'] === 'string' ? values['data-dir'] : undefined;
}

function preloadPath(): string {
  // A sandboxed preload must be CommonJS: electron-vite writes out/preload/index.js for it.
  const candidates = ['../preload/index.js', '../preload/index.cjs', '../preload/index.mjs'].map((p) => path.resolve(here, p));
  return candidates.find((p) => existsSync(p)) ?? candidates[0]!;
}

// The renderer is served from app://workbench (security.ts): a standard, secure scheme, registered before ready.
protocol.registerSchemesAsPrivileged([{ scheme: APP_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true } }]);

if (!app.requestSingleInstanceLock()) {
  // A second instance would train into the same database; the first one gets focused instead.
  app.quit();
} else {
  const paths = resolvePaths({ dataDir: dataDirArgument(), electronUserData: app.getPath('userData') });
  const store = Store.open(paths.dbFile);
  const services = createServices({ store, paths });
  const api = createWorkbenchApi({ ...services, paths, mode: 'electron' });
  const windows = new Set<BrowserWindow>();

  api.onRunEvent((event) => {
    for (const win of windows) if (!win.isDestroyed() && !win.webContents.isDestroyed()) win.webContents.send(IPC_EVENT_CHANNEL, event);
  });

  // Packaged, ELECTRON_RENDERER_URL is ignored: an environment variable must not choose the code the window runs.
  const entry = rendererEntry({ packaged: app.isPackaged, devServer: process.env.ELECTRON_RENDERER_URL });
  const checkSender = (event: IpcMainInvokeEvent) => {
    if (
      !isTrustedSender(
        event.sender,
        event.senderFrame,
        [...windows].map((win) => win.webContents),
        entry,
      )
    ) {
      throw new WorkbenchError('conflict', 'Calls are accepted only from the main frame of the workbench window.');
    }
  };

  ipcMain.handle(IPC_CALL_CHANNEL, async (event: IpcMainInvokeEvent, method: unknown, input: unknown) => {
    try {
      checkSender(event);
      // A job still working for a window that closed (a preview, a generation) is ended with it.
      const caller = new AbortController();
      const gone = () => caller.abort();
      event.sender.once('destroyed', gone);
      try {
        return { ok: true, output: await withCallSignal(caller.signal, () => dispatch(api, String(method), input)) };
      } finally {
        event.sender.removeListener('destroyed', gone);
      }
    } catch (error) {
      return { ok: false, error: WorkbenchError.from(error).toJSON() };
    }
  });

  // The native file dialog for model folders, datasets and export folders: the chosen path, or null.
  ipcMain.handle(IPC_PICK_CHANNEL, async (event: IpcMainInvokeEvent, raw: unknown) => {
    checkSender(event);
    const request = PickPathRequestSchema.parse(raw);
    const win = BrowserWindow.fromWebContents(event.sender);
    if (!win) return null;
    const result = await dialog.showOpenDialog(win, {
      title: request.title,
      properties: request.kind === 'folder' ? ['openDirectory', 'createDirectory'] : ['openFile'],
      filters: request.extensions ? [{ name: request.title ?? 'Files', extensions: request.extensions }] : undefined,
    });
    return result.canceled ? null : (result.filePaths[0] ?? null);
  });

  const createWindow = () => {
    const win = new BrowserWindow({
      width: 1280,
      height: 840,
      minWidth: 900,
      minHeight: 600,
      title: 'LoRA Workbench',
      show: false,
      webPreferences: { preload: preloadPath(), contextIsolation: true, sandbox: true, nodeIntegration: false },
    });
    windows.add(win);
    win.on('closed', () => windows.delete(win));
    win.once('ready-to-show', () => win.show());
    // No navigation away, no new windows, no webviews, no permissions; allow-listed links open in the system browser.
    hardenContents(win.webContents, { entry, openExternal: (url) => shell.openExternal(url) });
    void win.loadURL(entry);
  };

  const serveApp = async (request: Request): Promise<Response> => {
    const file = appRequestFile(paths.rendererDir, request.url);
    if (!file || !existsSync(file)) return new Response('Not found', { status: 404 });
    const response = await net.fetch(pathToFileURL(file).href);
    const headers = new Headers(response.headers);
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) headers.set(name, value);
    return new Response(response.body, { status: response.status, headers });
  };

  app.on('second-instance', () => {
    const [win] = windows;
    if (win) win.focus();
  });

  let closed = false;
  app.on('before-quit', (event) => {
    if (closed) return;
    // Quit waits until running workers are ended and their runs marked interrupted.
    event.preventDefault();
    void services
      .close()
      .catch(() => undefined)
      .finally(() => {
        store.close();
        closed = true;
        app.quit();
      });
  });

  app.on('window-all-closed', () => {
    if (process.platform !== 'darwin') app.quit();
  });

  app.on('activate', () => {
    if (windows.size === 0) createWindow();
  });

  void app.whenReady().then(() => {
    protocol.handle(APP_SCHEME, serveApp);
    createWindow();
  });
}
