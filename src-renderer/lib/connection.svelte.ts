// How the renderer reaches the workbench, as state the banner and the pages read.
import { untrack } from 'svelte';
import type { ConnectionState } from './socket-transport.ts';

class Connection {
  /** Electron's preload is always "open": IPC has no connection to lose. */
  state = $state<ConnectionState>({ kind: 'open' });
  /**
   * Counts opens after the first. Events sent while the socket was down are lost, so pages that mirror
   * server state read this in an effect and reload when it changes.
   */
  reconnects = $state(0);
  #everOpened = false;

  update(state: ConnectionState): void {
    if (state.kind === 'open') {
      if (this.#everOpened) this.reconnects++;
      this.#everOpened = true;
    }
    this.state = state;
  }
}

export const connection = new Connection();

/**
 * Runs `load` when the calling component opens and again after every reconnect, since events sent while
 * the socket was down are lost. Call it while the component initialises (it declares an effect); what
 * `load` reads is not tracked, so only a reconnect (or the component's own effects) loads again.
 */
export function loadOnOpenAndReconnect(load: () => unknown): void {
  $effect(() => {
    void connection.reconnects;
    void untrack(load);
  });
}
