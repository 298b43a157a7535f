// The browser-mode transport: WorkbenchApi calls over the loopback WebSocket (src-shared/transport.ts).
// It reconnects with backoff; calls made while disconnected wait in a queue and go out on the next open.
import type { ApiMethod } from '../../src-shared/api.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { WireEventSchema, WireReplySchema, type WireCall } from '../../src-shared/transport.ts';

export type ConnectionState =
  | { kind: 'connecting' }
  | { kind: 'open' }
  | { kind: 'reconnecting'; attempt: number; retryInMs: number }
  | { kind: 'no-token' }
  | { kind: 'rejected' }
  /** A file:// page without the preload's window.workbench: the Electron build is broken or stale. */
  | { kind: 'no-bridge' };

/** Close codes a server uses to refuse the token: policy violation, and the 4000-range "HTTP-like" 401/403. */
const REJECT_CODES = new Set([1008, 4001, 4401, 4403]);

/**
 * Calls that change state are not re-sent after a dropped connection: the server may already have run them
 * (a second runs.start would start a second run). Reads are safe to repeat.
 */
const NOT_REPEATABLE = new Set<ApiMethod>(['runs.start', 'runs.stop', 'runs.resume', 'exports.create']);

const MIN_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 5_000;

interface Pending {
  call: WireCall;
  resolve: (output: unknown) => void;
  reject: (error: unknown) => void;
}

export interface SocketTransportOptions {
  /** ws(s)://host/api?token=…, or null when the page has no token (nothing to try). */
  url: string | null;
  onState: (state: ConnectionState) => void;
  /**
   * Asked after a socket failed before opening: a browser reports a refused upgrade (HTTP 401) exactly like
   * a server that is down, so the caller checks with plain HTTP. Returns true when the token is refused.
   */
  isTokenRejected?: () => Promise<boolean>;
}

export class SocketTransport {
  readonly #options: SocketTransportOptions;
  #socket: WebSocket | null = null;
  #nextId = 1;
  /** Not yet sent, in call order. */
  #queue: Pending[] = [];
  /** Sent, waiting for the reply. */
  readonly #inFlight = new Map<number, Pending>();
  readonly #listeners = new Set<(event: unknown) => void>();
  #failures = 0;
  #stopped = false;

  constructor(options: SocketTransportOptions) {
    this.#options = options;
  }

  start(): void {
    if (this.#options.url === null) {
      this.#setState({ kind: 'no-token' });
      return;
    }
    this.#connect();
  }

  invoke = (method: ApiMethod, input: unknown): Promise<unknown> =>
    new Promise((resolve, reject) => {
      this.#queue.push({ call: { id: this.#nextId++, method, input }, resolve, reject });
      this.#flush();
    });

  subscribe = (listener: (event: unknown) => void): (() => void) => {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  };

  #setState(state: ConnectionState): void {
    this.#options.onState(state);
  }

  #connect(): void {
    this.#setState(this.#failures === 0 ? { kind: 'connecting' } : this.#reconnectingState());
    const socket = new WebSocket(this.#options.url!);
    this.#socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      this.#failures = 0;
      this.#setState({ kind: 'open' });
      this.#flush();
    };
    socket.onmessage = (message) => this.#receive(message.data);
    socket.onclose = (close) => {
      this.#socket = null;
      this.#dropInFlight();
      if (this.#stopped) return;
      if (REJECT_CODES.has(close.code)) return this.#reject();
      this.#failures++;
      if (!opened && this.#options.isTokenRejected) {
        void this.#options.isTokenRejected().then(
          (rejected) => (rejected ? this.#reject() : this.#retry()),
          () => this.#retry(),
        );
      } else {
        this.#retry();
      }
    };
  }

  #reject(): void {
    // A refused token stays refused: retrying would only hammer the server. Queued calls keep waiting,
    // and the banner tells the user to open the URL the server printed.
    this.#stopped = true;
    this.#setState({ kind: 'rejected' });
  }

  #backoffMs(): number {
    const base = Math.min(MAX_BACKOFF_MS, MIN_BACKOFF_MS * 2 ** (this.#failures - 1));
    // Jitter keeps several tabs from reconnecting in lockstep after a server restart.
    return Math.round(base * (0.75 + Math.random() * 0.5));
  }

  #reconnectingState(): ConnectionState {
    return { kind: 'reconnecting', attempt: this.#failures, retryInMs: 0 };
  }

  #retry(): void {
    const delay = this.#backoffMs();
    this.#setState({ kind: 'reconnecting', attempt: this.#failures, retryInMs: delay });
    setTimeout(() => this.#connect(), delay);
  }

  #flush(): void {
    const socket = this.#socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    for (const pending of this.#queue.splice(0)) {
      this.#inFlight.set(pending.call.id, pending);
      socket.send(JSON.stringify(pending.call));
    }
  }

  #dropInFlight(): void {
    const repeat: Pending[] = [];
    for (const pending of this.#inFlight.values()) {
      const method = pending.call.method as ApiMethod;
      if (NOT_REPEATABLE.has(method)) {
        pending.reject(
          new WorkbenchError(
            'internal',
            `The connection to the workbench closed before "${method}" answered, so it may or may not have happened. ` +
              'Reload the page once it reconnects and check before trying again.',
          ),
        );
      } else {
        repeat.push(pending);
      }
    }
    this.#inFlight.clear();
    this.#queue.unshift(...repeat);
  }

  #receive(data: unknown): void {
    let message: unknown;
    try {
      message = JSON.parse(String(data));
    } catch {
      console.error('workbench: ignored a message that is not JSON', data);
      return;
    }
    const reply = WireReplySchema.safeParse(message);
    if (reply.success) {
      const pending = this.#inFlight.get(reply.data.id);
      if (!pending) return;
      this.#inFlight.delete(reply.data.id);
      if (reply.data.ok) pending.resolve(reply.data.output);
      else pending.reject(new WorkbenchError(reply.data.error.code, reply.data.error.message, reply.data.error.details));
      return;
    }
    const event = WireEventSchema.safeParse(message);
    if (event.success) {
      for (const listener of this.#listeners) listener(event.data.event);
      return;
    }
    console.error('workbench: ignored a message of unknown shape', message);
  }
}
