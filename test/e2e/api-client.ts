// The WorkbenchApi over the served product's WebSocket, as the renderer calls it: for e2e specs that
// set a product up through the API, and for scripts/screenshot-real-data.ts.
import WebSocket from 'ws';

/** Connects with the URL's per-launch token; `call` sends one request and resolves with its output, or rejects with its error. */
export async function apiClient(url: string) {
  const address = new URL(url);
  const socket = new WebSocket(`ws://${address.host}/api?token=${encodeURIComponent(address.searchParams.get('token') ?? '')}`);
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  socket.on('message', (data) => {
    const message = JSON.parse(String(data));
    const call = pending.get(message.id);
    if (!call) return;
    pending.delete(message.id);
    if (message.ok) call.resolve(message.output);
    else call.reject(new Error(`${message.error.code}: ${message.error.message}`));
  });
  let next = 0;
  return {
    call<T>(method: string, input?: unknown): Promise<T> {
      const id = ++next;
      socket.send(JSON.stringify({ id, method, input }));
      return new Promise<T>((resolve, reject) => pending.set(id, { resolve: resolve as (v: unknown) => void, reject }));
    },
    close: () => socket.close(),
  };
}
