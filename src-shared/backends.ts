// Which compute backends are installed: the one rule the main process (system.info, the New run page)
// and the worker (initBackend) both apply, so the two cannot disagree. Each passes its own module
// resolution (src-shared loads no Node modules); nothing here loads native code.
import type { BackendName } from './config.ts';

/** The packages each backend needs; any one of the alternatives is enough. */
export const backendPackages: Record<BackendName, readonly (readonly string[])[]> = {
  tensorflow: [['@tensorflow/tfjs-node-gpu'], ['@tensorflow/tfjs-node']],
  webgpu: [['@tensorflow/tfjs-backend-webgpu', 'webgpu']],
  wasm: [['@tensorflow/tfjs-backend-wasm']],
  cpu: [['@tensorflow/tfjs-backend-cpu']],
};

export interface PackageProbe {
  /** The file a specifier resolves to, or null when it is not installed. */
  resolve(specifier: string): string | null;
  exists(file: string): boolean;
  platform: string;
  arch: string;
}

const parentOf = (file: string) => file.replace(/[\\/][^\\/]*$/, '');

/** The folder of an installed package, also for packages whose `exports` hide their package.json. */
function packageDir(probe: PackageProbe, name: string): string | null {
  const pkg = probe.resolve(`${name}/package.json`);
  if (pkg) return parentOf(pkg);
  const main = probe.resolve(name);
  if (!main) return null;
  let dir = parentOf(main);
  while (parentOf(dir) !== dir && dir !== '' && !probe.exists(`${dir}/package.json`)) dir = parentOf(dir);
  return dir;
}

/** Dawn ships one native binary per platform; a `webgpu` package without ours cannot run here. */
export function dawnBinaryExists(probe: PackageProbe): boolean {
  const dir = packageDir(probe, 'webgpu');
  const arch = probe.platform === 'darwin' ? 'universal' : probe.arch;
  return dir !== null && probe.exists(`${dir}/dist/${probe.platform}-${arch}/dawn.node`);
}

/** Whether a package is installed, by the probe's resolution. */
export const packageInstalled = (probe: PackageProbe) => (name: string) => packageDir(probe, name) !== null;

/** Backends whose packages are installed (and, for webgpu, whose native binary is there), fastest first. */
export function installedBackends(probe: PackageProbe, isInstalled: (name: string) => boolean = packageInstalled(probe)): BackendName[] {
  return (Object.keys(backendPackages) as BackendName[]).filter(
    (name) => backendPackages[name].some((alternative) => alternative.every(isInstalled)) && (name !== 'webgpu' || dawnBinaryExists(probe)),
  );
}
