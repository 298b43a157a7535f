// engines.pytorch: the New run page's view of the pytorch engine's Python environment and its "Set up"
// button. The same environment and the same steps as `lora-workbench engine setup pytorch` (cli/engine.ts),
// run without blocking the main process; pip's lines go out as engine-setup events while it runs.
import path from 'node:path';
import type { PytorchEnvironment as PytorchEnvironmentState, RunEvent, RunEventListener } from '../../src-shared/api.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import type { WorkbenchPaths } from '../paths.ts';
import { describePythonEnvAsync, ensurePythonEnvAsync, PythonEnvError } from './python-env.ts';
import { enginePackageRoot, pytorchEnvDir } from './pytorch-engine.ts';

export class PytorchEnvironment {
  readonly #paths: Pick<WorkbenchPaths, 'dataDir' | 'appRoot'>;
  readonly #listeners = new Set<RunEventListener>();
  /** The set-up in progress: a second click (or a second window) waits for it instead of starting pip again. */
  #setUp: Promise<PytorchEnvironmentState> | null = null;

  constructor(options: { paths: Pick<WorkbenchPaths, 'dataDir' | 'appRoot'> }) {
    this.#paths = options.paths;
  }

  subscribe(listener: RunEventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async state({ setUp = false }: { setUp?: boolean }): Promise<PytorchEnvironmentState> {
    if (!setUp) return this.#describe();
    this.#setUp ??= this.#install().finally(() => (this.#setUp = null));
    return this.#setUp;
  }

  get #dir(): string {
    return pytorchEnvDir(this.#paths);
  }

  async #describe(): Promise<PytorchEnvironmentState> {
    try {
      return { ready: true, ...(await describePythonEnvAsync(this.#dir)), installed: false };
    } catch (error) {
      if (!(error instanceof PythonEnvError)) throw error;
      return { ready: false, dir: this.#dir, problem: error.message };
    }
  }

  async #install(): Promise<PytorchEnvironmentState> {
    const emit = (line: string) => {
      const event: RunEvent = { kind: 'engine-setup', engine: 'pytorch', line };
      for (const listener of this.#listeners) listener(event);
    };
    try {
      const report = await ensurePythonEnvAsync({
        dir: this.#dir,
        requirements: [{ file: path.join(enginePackageRoot(this.#paths.appRoot), 'requirements.txt') }],
        log: emit,
      });
      return { ready: true, ...report };
    } catch (error) {
      // Missing Python, venv or pip, or an index without torch: the message says what to install.
      if (error instanceof PythonEnvError) throw new WorkbenchError('backend_unavailable', error.message);
      throw error;
    }
  }
}
