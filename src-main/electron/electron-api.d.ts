// The few Electron APIs the main process and the preload use, typed here because the `electron`
// package (an optional dependency whose install downloads the binary) is absent on machines that
// cannot fetch it. Where node_modules/electron exists, delete this file: its electron.d.ts is the
// real declaration and the two would conflict.
declare module 'electron' {
  interface Event {
    preventDefault(): void;
  }

  interface Session {
    setPermissionRequestHandler(handler: (contents: unknown, permission: string, callback: (granted: boolean) => void) => void): void;
    setPermissionCheckHandler(handler: () => boolean): void;
  }

  interface WebContents {
    send(channel: string, ...args: unknown[]): void;
    isDestroyed(): boolean;
    setWindowOpenHandler(handler: (details: { url: string }) => { action: 'allow' | 'deny' }): void;
    on(event: 'will-navigate' | 'will-redirect', listener: (event: Event, url: string) => void): this;
    on(event: 'will-frame-navigate', listener: (event: Event & { url: string }) => void): this;
    on(event: 'will-attach-webview', listener: (event: Event) => void): this;
    getURL(): string;
    once(event: 'destroyed', listener: () => void): this;
    removeListener(event: 'destroyed', listener: () => void): this;
    readonly session: Session;
  }

  interface WebFrameMain {
    readonly url: string;
    readonly parent: WebFrameMain | null;
  }

  interface CustomScheme {
    scheme: string;
    privileges?: { standard?: boolean; secure?: boolean; supportFetchAPI?: boolean; corsEnabled?: boolean; stream?: boolean };
  }

  interface Protocol {
    registerSchemesAsPrivileged(schemes: CustomScheme[]): void;
    handle(scheme: string, handler: (request: Request) => Response | Promise<Response>): void;
  }

  interface Net {
    fetch(url: string): Promise<Response>;
  }

  interface OpenDialogOptions {
    title?: string;
    defaultPath?: string;
    properties?: ('openFile' | 'openDirectory' | 'createDirectory' | 'promptToCreate')[];
    filters?: { name: string; extensions: string[] }[];
  }

  interface Dialog {
    showOpenDialog(window: BrowserWindow, options: OpenDialogOptions): Promise<{ canceled: boolean; filePaths: string[] }>;
  }

  interface WebPreferences {
    preload?: string;
    contextIsolation?: boolean;
    sandbox?: boolean;
    nodeIntegration?: boolean;
    webSecurity?: boolean;
  }

  interface BrowserWindowConstructorOptions {
    width?: number;
    height?: number;
    minWidth?: number;
    minHeight?: number;
    title?: string;
    show?: boolean;
    webPreferences?: WebPreferences;
  }

  class BrowserWindow {
    constructor(options?: BrowserWindowConstructorOptions);
    static getAllWindows(): BrowserWindow[];
    static fromWebContents(contents: WebContents): BrowserWindow | null;
    readonly webContents: WebContents;
    loadURL(url: string): Promise<void>;
    loadFile(filePath: string): Promise<void>;
    show(): void;
    focus(): void;
    isDestroyed(): boolean;
    on(event: 'ready-to-show' | 'closed', listener: () => void): this;
    on(event: 'close', listener: (event: Event) => void): this;
    once(event: 'ready-to-show', listener: () => void): this;
  }

  interface App {
    readonly isPackaged: boolean;
    whenReady(): Promise<void>;
    getPath(name: 'userData' | 'home' | 'temp'): string;
    quit(): void;
    exit(code?: number): void;
    requestSingleInstanceLock(): boolean;
    on(event: 'before-quit', listener: (event: Event) => void): this;
    on(event: 'window-all-closed' | 'activate' | 'second-instance', listener: () => void): this;
  }

  interface IpcMainInvokeEvent {
    sender: WebContents;
    senderFrame: WebFrameMain | null;
  }

  interface IpcMain {
    handle(channel: string, listener: (event: IpcMainInvokeEvent, ...args: unknown[]) => Promise<unknown> | unknown): void;
    removeHandler(channel: string): void;
  }

  interface IpcRendererEvent {
    sender: unknown;
  }

  interface IpcRenderer {
    invoke(channel: string, ...args: unknown[]): Promise<unknown>;
    on(channel: string, listener: (event: IpcRendererEvent, ...args: unknown[]) => void): this;
    removeListener(channel: string, listener: (event: IpcRendererEvent, ...args: unknown[]) => void): this;
  }

  interface ContextBridge {
    exposeInMainWorld(apiKey: string, api: unknown): void;
  }

  interface Shell {
    openExternal(url: string): Promise<void>;
  }

  export const app: App;
  export const ipcMain: IpcMain;
  export const ipcRenderer: IpcRenderer;
  export const contextBridge: ContextBridge;
  export const shell: Shell;
  export const protocol: Protocol;
  export const net: Net;
  export const dialog: Dialog;
  export { BrowserWindow };
  export type { Event, IpcMainInvokeEvent, IpcRendererEvent, OpenDialogOptions, WebContents };
}
