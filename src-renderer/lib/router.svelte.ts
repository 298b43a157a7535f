// Hash routes (#/runs, #/runs/new, #/runs/<id>, #/adapters): they work from file:// in Electron and need
// nothing from the loopback server.
export type Route =
  | { page: 'runs' }
  | { page: 'new-run' }
  | { page: 'run'; id: string }
  | { page: 'adapters' }
  | { page: 'not-found'; path: string };

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '') || '/runs';
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'runs' && parts.length === 1) return { page: 'runs' };
  if (parts[0] === 'runs' && parts[1] === 'new' && parts.length === 2) return { page: 'new-run' };
  if (parts[0] === 'runs' && parts.length === 2) return { page: 'run', id: parts[1]! };
  if (parts[0] === 'adapters' && parts.length === 1) return { page: 'adapters' };
  return { page: 'not-found', path };
}

export const paths = {
  runs: '#/runs',
  newRun: '#/runs/new',
  run: (id: string) => `#/runs/${encodeURIComponent(id)}`,
  adapters: '#/adapters',
};

class Router {
  #hash = $state(location.hash);
  readonly route: Route = $derived(parseRoute(this.#hash));

  constructor() {
    window.addEventListener('hashchange', () => (this.#hash = location.hash));
  }

  navigate(hash: string): void {
    location.hash = hash;
  }
}

export const router = new Router();
