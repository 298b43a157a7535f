// Where the workbench keeps its data, and where the repository's own files (resources/, the built
// renderer) are, whether this file runs as TypeScript source (src-main/) or bundled (out/main/).
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const DATA_DIR_ENV = 'LORA_WORKBENCH_HOME';
const PACKAGE_NAME = 'lora-workbench';

export interface WorkbenchPaths {
  dataDir: string;
  dbFile: string;
  runsDir: string;
  exportsDir: string;
  /** The repository (or packaged app) root: holds package.json, resources/ and out/. */
  appRoot: string;
  resourcesDir: string;
  /** The embedded model behind the id `default` (src-shared/config.ts DEFAULT_MODEL). */
  defaultModelDir: string;
  /** The embedded dataset behind the id `sample` (SAMPLE_DATASET). */
  sampleDatasetPath: string;
  /** `npm run build:renderer` writes the Svelte app here. */
  rendererDir: string;
  runDir(runId: string): string;
}

/**
 * The folder holding package.json "lora-workbench", found by walking up from this module, so that
 * the answer is the same for src-main/paths.ts and for its bundle in out/main/.
 */
export function findAppRoot(from: string = path.dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === PACKAGE_NAME) return dir;
      } catch {
        // A malformed package.json further down is not ours; keep walking up.
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`Cannot find the ${PACKAGE_NAME} package root above ${from}`);
    dir = parent;
  }
}

/** `--data-dir` wins, then Electron's userData, then $LORA_WORKBENCH_HOME, then ~/.lora-workbench. */
export function defaultDataDir(options: { electronUserData?: string; env?: NodeJS.ProcessEnv } = {}): string {
  if (options.electronUserData) return options.electronUserData;
  const fromEnv = (options.env ?? process.env)[DATA_DIR_ENV];
  if (fromEnv) return path.resolve(fromEnv);
  return path.join(os.homedir(), '.lora-workbench');
}

export function resolvePaths(options: { dataDir?: string; electronUserData?: string; appRoot?: string } = {}): WorkbenchPaths {
  const dataDir = path.resolve(options.dataDir ?? defaultDataDir({ electronUserData: options.electronUserData }));
  const appRoot = options.appRoot ?? findAppRoot();
  const runsDir = path.join(dataDir, 'runs');
  const resourcesDir = path.join(appRoot, 'resources');
  return {
    dataDir,
    dbFile: path.join(dataDir, 'workbench.sqlite'),
    runsDir,
    exportsDir: path.join(dataDir, 'exports'),
    appRoot,
    resourcesDir,
    defaultModelDir: path.join(resourcesDir, 'models', 'default'),
    sampleDatasetPath: path.join(resourcesDir, 'datasets', 'sample', 'train.jsonl'),
    rendererDir: path.join(appRoot, 'out', 'renderer'),
    runDir: (runId: string) => {
      // Run ids are generated here, but a path built from an id must never leave runs/.
      if (!/^[\w.-]+$/.test(runId) || runId === '.' || runId === '..') throw new Error(`Bad run id "${runId}"`);
      return path.join(runsDir, runId);
    },
  };
}

export function ensureDataDirs(paths: WorkbenchPaths): void {
  for (const dir of [paths.dataDir, paths.runsDir, paths.exportsDir]) mkdirSync(dir, { recursive: true });
}

export function packageVersion(paths: Pick<WorkbenchPaths, 'appRoot'>): string {
  return (JSON.parse(readFileSync(path.join(paths.appRoot, 'package.json'), 'utf8')) as { version: string }).version;
}
