// Setup of the `webgpu` vitest project (`npm run test:webgpu`). It must never pass by skipping: no
// WebGPU adapter fails every file here with the reason Dawn gave, and a file in which no "on webgpu"
// test ran (say, a renamed describe block) fails too.
//
// Needs the `webgpu` npm package (Dawn, an optional dependency) and a Vulkan driver. Without a GPU,
// Mesa's lavapipe (llvmpipe) works; Dawn rejects Debian bookworm's Mesa 22, so install Mesa 25 from
// bookworm-backports: `apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1`
// (.ci/run does it). XDG_RUNTIME_DIR only silences the loader's warning: headless compute needs no display.
import { afterAll, beforeEach, expect, type RunnerTask, type RunnerTestFile } from 'vitest';
import { initBackend } from '../../src-worker/backend.ts';

const info = await initBackend('webgpu').catch((error: unknown) => {
  throw new Error(`npm run test:webgpu needs a WebGPU adapter and none started: ${(error as Error).message}`);
});
expect(info.name).toBe('webgpu');
console.info(`webgpu adapter: ${info.adapter}`);

function ranTests(task: RunnerTask): RunnerTask[] {
  if (task.type === 'suite') return task.tasks.flatMap(ranTests);
  return task.result?.state === 'pass' || task.result?.state === 'fail' ? [task] : [];
}

/** The describe names and the test name, without the file. */
function fullName(task: RunnerTask): string {
  const names: string[] = [];
  for (let t: RunnerTask | undefined = task; t && !('filepath' in t); t = t.suite) names.unshift(t.name);
  return names.join(' ');
}

// The files' other tests are cpu-only unit tests: `npm run test:webgpu` filters them out with -t, and
// this skips them when the project runs unfiltered (`vitest run --project webgpu`).
beforeEach((context) => {
  if (!/ on webgpu\b/.test(fullName(context.task))) context.skip();
});

// vitest reads hook parameters from the source: the context must be a destructuring pattern.
afterAll(({}, suite) => {
  const file = suite as RunnerTestFile;
  if (ranTests(file).length === 0)
    throw new Error(`no test ran on webgpu in ${file.name} (adapter: ${info.adapter}): no describe or test is named "... on webgpu" any more`);
});
