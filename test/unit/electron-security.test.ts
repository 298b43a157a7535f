// Issue 15, finding 14: Electron's security checklist, tested through the functions main.ts wires
// (src-main/electron/security.ts), since the Electron binary cannot run here.
import { EventEmitter } from 'node:events';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import {
  APP_ORIGIN,
  appRequestFile,
  hardenContents,
  isAllowedExternalUrl,
  isAppUrl,
  isTrustedSender,
  rendererEntry,
  type HardenableContents,
} from '../../src-main/electron/security.ts';

const entry = `${APP_ORIGIN}/index.html`;

describe('the renderer entry', () => {
  it('ignores ELECTRON_RENDERER_URL in a packaged app, and anything but a loopback dev server', () => {
    expect(rendererEntry({ packaged: true, devServer: 'http://localhost:5173' })).toBe(entry);
    expect(rendererEntry({ packaged: false, devServer: 'http://localhost:5173/' })).toBe('http://localhost:5173/');
    expect(rendererEntry({ packaged: false, devServer: 'https://evil.example/' })).toBe(entry);
    expect(rendererEntry({ packaged: false, devServer: 'file:///tmp/x.html' })).toBe(entry);
    expect(rendererEntry({ packaged: false, devServer: undefined })).toBe(entry);
  });

  it('serves app://workbench from the renderer folder only, routes as index.html', () => {
    const dir = '/opt/workbench/renderer';
    expect(appRequestFile(dir, 'app://workbench/assets/index-1.js')).toBe(path.join(dir, 'assets', 'index-1.js'));
    expect(appRequestFile(dir, 'app://workbench/')).toBe(path.join(dir, 'index.html'));
    expect(appRequestFile(dir, 'app://workbench/runs')).toBe(path.join(dir, 'index.html'));
    // Dot segments are folded before the lookup: the request stays inside the folder.
    expect(appRequestFile(dir, 'app://workbench/%2e%2e/%2e%2e/etc/passwd.txt')).toBe(path.join(dir, 'etc', 'passwd.txt'));
    expect(appRequestFile(dir, 'app://workbench/a%00b.js')).toBeNull();
    expect(appRequestFile(dir, 'app://other/index.html')).toBeNull();
    expect(appRequestFile(dir, 'file:///etc/passwd')).toBeNull();
  });
});

describe('links and senders', () => {
  it('opens only https links on the allow-list', () => {
    expect(isAllowedExternalUrl('https://huggingface.co/datasets/nyu-mll/glue')).toBe(true);
    expect(isAllowedExternalUrl('https://github.com/nyu-mll/BBQ')).toBe(true);
    expect(isAllowedExternalUrl('http://github.com/nyu-mll/BBQ')).toBe(false);
    expect(isAllowedExternalUrl('https://github.com.evil.example/')).toBe(false);
    expect(isAllowedExternalUrl('https://user:pw@github.com/')).toBe(false);
    expect(isAllowedExternalUrl('file:///etc/passwd')).toBe(false);
    expect(isAllowedExternalUrl('javascript:alert(1)')).toBe(false);
  });

  it('answers IPC only from the main frame of its own window showing the app', () => {
    const own = { id: 1 };
    const other = { id: 2 };
    expect(isTrustedSender(own, { url: `${APP_ORIGIN}/index.html#/runs`, parent: null }, [own], entry)).toBe(true);
    expect(isTrustedSender(other, { url: `${APP_ORIGIN}/index.html`, parent: null }, [own], entry)).toBe(false);
    expect(isTrustedSender(own, { url: `${APP_ORIGIN}/index.html`, parent: {} }, [own], entry)).toBe(false);
    expect(isTrustedSender(own, { url: 'https://evil.example/', parent: null }, [own], entry)).toBe(false);
    expect(isTrustedSender(own, null, [own], entry)).toBe(false);
    expect(isAppUrl('http://localhost:5173/#/runs', 'http://localhost:5173/')).toBe(true);
    expect(isAppUrl('http://localhost:9999/', 'http://localhost:5173/')).toBe(false);
  });
});

/** webContents as far as hardenContents touches it. */
class FakeContents extends EventEmitter {
  openHandler: ((details: { url: string }) => { action: 'deny' }) | null = null;
  permissionHandler: ((contents: unknown, permission: string, callback: (granted: boolean) => void) => void) | null = null;
  checkHandler: (() => boolean) | null = null;
  setWindowOpenHandler(handler: (details: { url: string }) => { action: 'deny' }) {
    this.openHandler = handler;
  }
  session = {
    setPermissionRequestHandler: (handler: FakeContents['permissionHandler']) => (this.permissionHandler = handler),
    setPermissionCheckHandler: (handler: () => boolean) => (this.checkHandler = handler),
  };
}

const preventable = (url?: string) => ({ url, preventDefault: vi.fn() });

describe('hardenContents', () => {
  it('keeps the window on the app, denies new windows, webviews and permissions', () => {
    const contents = new FakeContents();
    const openExternal = vi.fn();
    hardenContents(contents as unknown as HardenableContents, { entry, openExternal });

    for (const event of ['will-navigate', 'will-redirect'] as const) {
      const away = preventable();
      contents.emit(event, away, 'https://evil.example/');
      expect(away.preventDefault).toHaveBeenCalled();
      const inside = preventable();
      contents.emit(event, inside, `${APP_ORIGIN}/index.html#/adapters`);
      expect(inside.preventDefault).not.toHaveBeenCalled();
    }
    const frame = preventable('https://evil.example/frame');
    contents.emit('will-frame-navigate', frame);
    expect(frame.preventDefault).toHaveBeenCalled();
    const webview = preventable();
    contents.emit('will-attach-webview', webview);
    expect(webview.preventDefault).toHaveBeenCalled();

    expect(contents.openHandler!({ url: 'https://huggingface.co/x' })).toEqual({ action: 'deny' });
    expect(contents.openHandler!({ url: 'https://evil.example/x' })).toEqual({ action: 'deny' });
    expect(openExternal.mock.calls).toEqual([['https://huggingface.co/x']]);

    const granted = vi.fn();
    contents.permissionHandler!(contents, 'media', granted);
    expect(granted).toHaveBeenCalledWith(false);
    expect(contents.checkHandler!()).toBe(false);
  });
});
