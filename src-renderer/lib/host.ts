// What only the desktop app offers the page, from the preload (src-main/electron/preload.ts): the native
// open dialog. In browser mode there is none (null), and the pages offer typing a path or dropping a file.
import type { PickPathRequest } from '../../src-shared/transport.ts';

export interface WorkbenchHost {
  pickPath(request: PickPathRequest): Promise<string | null>;
}

export const host: WorkbenchHost | null = (globalThis as { workbenchHost?: WorkbenchHost }).workbenchHost ?? null;
