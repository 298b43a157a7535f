// Which engine computes a run (../shared/design/ENGINES.md): TensorFlow.js in a worker thread, or PyTorch + PEFT in a
// Python child. A leaf: each method descriptor (methods.ts) names the engines that train it.
export const engineNames = ['tfjs', 'pytorch'] as const;
export type EngineName = (typeof engineNames)[number];
