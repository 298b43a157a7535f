// A list a page shows from the workbench: its last loaded value (null until the first load answers) and
// the error of the last load, loaded on open and again after every reconnect.
import { loadOnOpenAndReconnect } from './connection.svelte.ts';

export class Loaded<T> {
  /** Replaced whole (never mutated in place): pages assign what a call answers (a delete returns the list that remains). */
  value: T | null = $state.raw(null);
  error: unknown = $state(null);
  readonly #fetch: () => Promise<T>;

  /** Create it while a component initialises: it declares the load-on-open-and-reconnect effect. */
  constructor(fetch: () => Promise<T>) {
    this.#fetch = fetch;
    loadOnOpenAndReconnect(() => this.load());
  }

  async load(): Promise<void> {
    try {
      this.value = await this.#fetch();
      this.error = null;
    } catch (error) {
      this.error = error;
    }
  }
}
