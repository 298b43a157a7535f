import { defineConfig } from 'vitest/config';

// `unit` and `integration` make up `npm test` and need nothing but this repo; `shared` reads the real
// datasets and checkpoints in ../shared and runs in CI as `npm run test:shared`; `interop` needs Python; `webgpu` needs a
// WebGPU adapter (in CI, Mesa's lavapipe) and runs as `npm run test:webgpu`.
export default defineConfig({
  test: {
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 60_000 } },
      { test: { name: 'integration', include: ['test/integration/**/*.test.ts'], testTimeout: 600_000, hookTimeout: 120_000, fileParallelism: false } },
      { test: { name: 'shared', include: ['test/shared/**/*.test.ts'], testTimeout: 600_000 } },
      // `npm run test:interop`: real PyTorch, transformers, PEFT and lm-evaluation-harness as referees, in the
      // Python environment LORA_WORKBENCH_PYTHON names (default: the repo's .venv); fails naming what is missing.
      { test: { name: 'interop', include: ['test/interop/**/*.test.ts'], testTimeout: 600_000, hookTimeout: 1_800_000, fileParallelism: false } },
      // `npm run test:torch`: the pytorch engine's TypeScript side and its parity with tfjs (needs .venv with torch).
      { test: { name: 'torch', include: ['test/torch/**/*.test.ts'], testTimeout: 600_000, hookTimeout: 120_000, fileParallelism: false } },
      // `npm run test:webgpu`: the parity blocks of these files on Dawn (test/helpers/backends.ts). Only
      // tests named "... on webgpu" run; the setup file fails every file when no adapter starts.
      {
        test: {
          name: 'webgpu',
          include: ['gpt2', 'llama', 'bert', 'generate', 'train-step-backends', 'method-backends', 'vocab-shards'].map((f) => `test/unit/${f}.test.ts`),
          env: { WORKBENCH_TEST_BACKEND: 'webgpu' },
          setupFiles: ['test/helpers/webgpu-setup.ts'],
          // A CPU Vulkan driver (lavapipe) compiles every new shader with LLVM: first runs take seconds.
          testTimeout: 180_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
