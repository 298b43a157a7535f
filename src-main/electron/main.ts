// Electron main process: app lifecycle, one window, and the IPC bridge to the WorkbenchApi.
// No logic of its own: every call goes through `dispatch`, every run event is forwarded as is.
import { app, BrowserWindow, ipcMain, shell, type IpcMainInvokeEvent } from 'electron';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { dispatch } from '../../src-shared/api.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { IPC_CALL_CHANNEL, IPC_EVENT_CHANNEL } from '../../src-shared/transport.ts';
import { createWorkbenchApi } from '../api.ts';
import { resolvePaths } from '../paths.ts';
import { createServices } from '../services.ts';
import { Store } from '../store/index.ts';

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

  ipcMain.handle(IPC_CALL_CHANNEL, async (event: IpcMainInvokeEvent, method: unknown, input: unknown) => {
    try {
      if (![...windows].some((win) => win.webContents === event.sender)) {
        throw new WorkbenchError('conflict', 'Calls are accepted only from the workbench window.');
      }
      return { ok: true, output: await dispatch(api, String(method), input) };
    } catch (error) {
      return { ok: false, error: WorkbenchError.from(error).toJSON() };
    }
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
    // Links leave the app for the system browser; the window itself never navigates away.
    win.webContents.setWindowOpenHandler(({ url }) => {
      if (/^https?:\/\//.test(url)) void shell.openExternal(url);
      return { action: 'deny' };
    });
    win.webContents.on('will-navigate', (event, url) => {
      if (url !== win.webContents.getURL()) event.preventDefault();
    });
    const devServer = process.env.ELECTRON_RENDERER_URL;
    if (devServer) void win.loadURL(devServer);
    else void win.loadFile(path.join(paths.rendererDir, 'index.html'));
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
    void services.close()
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

  void app.whenReady().then(createWindow);
}
