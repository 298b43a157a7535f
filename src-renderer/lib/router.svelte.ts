// Hash routes (#/runs, #/runs/new, #/runs/<id>, #/adapters): they work from file:// in Electron and need
// nothing from the loopback server.
export type Route =
  | { page: 'runs' }
  | { page: 'new-run'; dataset?: string }
  | { page: 'run'; id: string }
  | { page: 'adapters' }
  | { page: 'datasets' }
  | { page: 'evals' }
  | { page: 'eval-bias'; ids: string[] }
  | { page: 'eval-robustness'; ids: string[] }
  | { page: 'compare'; runs: string[] }
  | { page: 'playground'; adapter: string | null }
  | { page: 'studies'; id: string | null }
  | { page: 'not-found'; path: string };

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '') || '/runs';
  // Panels take their subjects from a query: #/evals/bias?ids=a,b
  const [pathPart = '', query = ''] = path.split('?', 2);
  const list = (key: string) => (new URLSearchParams(query).get(key) ?? '').split(',').filter(Boolean);
  const parts = pathPart.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'runs' && parts.length === 1) return { page: 'runs' };
  if (parts[0] === 'runs' && parts[1] === 'new' && parts.length === 2) {
    // #/runs/new?dataset=<id>: "Train on this" from the Datasets page.
    const dataset = new URLSearchParams(query).get('dataset');
    return dataset ? { page: 'new-run', dataset } : { page: 'new-run' };
  }
  if (parts[0] === 'runs' && parts.length === 2) return { page: 'run', id: parts[1]! };
  if (parts[0] === 'adapters' && parts.length === 1) return { page: 'adapters' };
  if (parts[0] === 'datasets' && parts.length === 1) return { page: 'datasets' };
  if (parts[0] === 'evals' && parts.length === 1) return { page: 'evals' };
  if (parts[0] === 'evals' && parts[1] === 'bias' && parts.length === 2) return { page: 'eval-bias', ids: list('ids') };
  if (parts[0] === 'evals' && parts[1] === 'robustness' && parts.length === 2) return { page: 'eval-robustness', ids: list('ids') };
  if (parts[0] === 'compare' && parts.length === 1) return { page: 'compare', runs: list('runs') };
  if (parts[0] === 'studies' && parts.length <= 2) return { page: 'studies', id: parts[1] ?? null };
  if (parts[0] === 'playground' && parts.length === 1) return { page: 'playground', adapter: new URLSearchParams(query).get('adapter') || null };
  return { page: 'not-found', path };
}

export const paths = {
  runs: '#/runs',
  newRun: '#/runs/new',
  run: (id: string) => `#/runs/${encodeURIComponent(id)}`,
  adapters: '#/adapters',
  datasets: '#/datasets',
  newRunOn: (datasetId: string) => `#/runs/new?dataset=${encodeURIComponent(datasetId)}`,
  evals: '#/evals',
  biasPanel: (ids: readonly string[]) => `#/evals/bias?ids=${ids.map(encodeURIComponent).join(',')}`,
  robustnessPanel: (ids: readonly string[]) => `#/evals/robustness?ids=${ids.map(encodeURIComponent).join(',')}`,
  compare: (runIds: readonly string[]) => `#/compare?runs=${runIds.map(encodeURIComponent).join(',')}`,
  studies: '#/studies',
  study: (id: string) => `#/studies/${encodeURIComponent(id)}`,
  playground: (adapterId?: string) => (adapterId ? `#/playground?adapter=${encodeURIComponent(adapterId)}` : '#/playground'),
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
