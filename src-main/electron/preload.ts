// The preload bridge: window.workbench is the WorkbenchApi, its calls carried by ipcRenderer.invoke
// and its run events by ipcRenderer.on. Both directions are validated by createApiClient.
import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron';
import { createApiClient } from '../../src-shared/api.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import {
  IPC_CALL_CHANNEL,
  IPC_EVENT_CHANNEL,
  IPC_PICK_CHANNEL,
  IpcReplySchema,
  PickPathRequestSchema,
  type PickPathRequest,
} from '../../src-shared/transport.ts';

const api = createApiClient(
  async (method, input) => {
    const reply = IpcReplySchema.parse(await ipcRenderer.invoke(IPC_CALL_CHANNEL, method, input));
    if (!reply.ok) throw new WorkbenchError(reply.error.code, reply.error.message, reply.error.details);
    return reply.output;
  },
  (listener) => {
    const onEvent = (_event: IpcRendererEvent, payload: unknown) => listener(payload);
    ipcRenderer.on(IPC_EVENT_CHANNEL, onEvent);
    return () => void ipcRenderer.removeListener(IPC_EVENT_CHANNEL, onEvent);
  },
);

/**
 * contextBridge keeps only the message of an Error thrown across it, so rejections cross as the
 * plain {code, message, details} object instead; WorkbenchError.from() in the page turns it back.
 */
function keepErrorCodes<T extends object>(target: T): T {
  const bridged: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(target)) {
    if (typeof value === 'function') {
      bridged[key] = (...args: unknown[]) => {
        const result = (value as (...a: unknown[]) => unknown).apply(target, args);
        return result instanceof Promise ? result.catch((error: unknown) => Promise.reject(WorkbenchError.from(error).toJSON())) : result;
      };
    } else if (value && typeof value === 'object') {
      bridged[key] = keepErrorCodes(value as object);
    } else {
      bridged[key] = value;
    }
  }
  return bridged as T;
}

contextBridge.exposeInMainWorld('workbench', keepErrorCodes(api));

/** What only the desktop app offers the page: the native file dialog (src-renderer/lib/host.ts). */
contextBridge.exposeInMainWorld('workbenchHost', {
  pickPath: async (request: PickPathRequest): Promise<string | null> => {
    const answer = await ipcRenderer.invoke(IPC_PICK_CHANNEL, PickPathRequestSchema.parse(request));
    return typeof answer === 'string' ? answer : null;
  },
});
