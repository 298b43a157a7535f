// Wire format of the two transports (Electron IPC and the loopback WebSocket). Thin on purpose:
// a call is {id, method, input}; a reply carries output or a WorkbenchError; events are pushed.
import { z } from 'zod';
import { WorkbenchErrorSchema } from './errors.ts';

export const IPC_CALL_CHANNEL = 'workbench:call';
export const IPC_EVENT_CHANNEL = 'workbench:event';
/** The browser-mode WebSocket lives here; the per-launch token goes in the `token` query parameter. */
export const WS_PATH = '/api';

/** Electron only: the native open dialog (a model folder, a dataset file, an export folder); answers a path or null. */
export const IPC_PICK_CHANNEL = 'workbench:pick-path';
export const PickPathRequestSchema = z.object({
  kind: z.enum(['file', 'folder']),
  title: z.string().max(200).optional(),
  extensions: z
    .array(z.string().regex(/^[\w.]+$/))
    .max(20)
    .optional(),
});
export type PickPathRequest = z.infer<typeof PickPathRequestSchema>;

export const WireCallSchema = z.object({ id: z.number().int(), method: z.string(), input: z.unknown().optional() });
export type WireCall = z.infer<typeof WireCallSchema>;

export const WireReplySchema = z.union([
  z.object({ id: z.number().int(), ok: z.literal(true), output: z.unknown() }),
  z.object({ id: z.number().int(), ok: z.literal(false), error: WorkbenchErrorSchema }),
]);
export type WireReply = z.infer<typeof WireReplySchema>;

export const WireEventSchema = z.object({ event: z.unknown() });

/** IPC replies use the same envelope minus the id (ipcRenderer.invoke pairs calls itself). */
export const IpcReplySchema = z.union([
  z.object({ ok: z.literal(true), output: z.unknown() }),
  z.object({ ok: z.literal(false), error: WorkbenchErrorSchema }),
]);
