// Frees each tape node's gradients and saved activations as soon as the backward pass is past it.
//
// tfjs's backward pass (engine.gradients, tape.ts backpropagateGradients) keeps every intermediate
// gradient and every activation a node saved until the whole backward pass ends: a training step's
// peak is then the forward's activations plus a gradient of the same size for each, about twice what
// the backward needs (PyTorch frees both as autograd walks the graph). The gradient of a node's
// outputs is read once, when that node is differentiated, and its saved tensors (the engine's own
// clones, one set per node) are read only then too: so once the backward has moved on to the next
// node of the same tape, both are garbage. This wraps each new tape node's gradient function to
// release them then. It never releases a tensor the node's gradient returned (a gradient may pass
// its dy or a saved tensor through), nor anything while higher-order gradients are being recorded.
import type * as tfc from '@tensorflow/tfjs-core';
import { tf } from '../tf.ts';

type Closures = Record<string, () => tfc.Tensor>;
interface TapeNode {
  gradient?: (dys: (tfc.Tensor | null)[]) => Closures;
  saved?: tfc.Tensor[];
}
interface EngineInternals {
  state: { activeTape: TapeNode[] | null; gradientDepth: number };
  addTapeNode: (...args: unknown[]) => void;
  releasesGradients?: boolean;
}

/** Gradients a node passed on for two of its inputs at once: two accumulated gradients are then one tensor, never released here. */
const shared = new WeakSet<tfc.Tensor>();

/** Per tape (a backward pass; a nested one, as kernels/recompute.ts runs, has its own): what the last differentiated node left. */
const pending = new WeakMap<TapeNode[], { tensors: tfc.Tensor[]; returned: Set<tfc.Tensor> }>();

function release(tape: TapeNode[]): void {
  const left = pending.get(tape);
  if (!left) return;
  pending.delete(tape);
  for (const tensor of left.tensors) if (!left.returned.has(tensor) && !shared.has(tensor)) tensor.dispose();
}

let enabled = true;

/** Turns the release off (and on again): the tests compare against tfjs's own backward pass. */
export function setGradientRelease(on: boolean): void {
  enabled = on;
}

/** Installs the release on the engine (once; every backend shares the engine). */
export function installGradientRelease(): void {
  const engine = tf.engine() as unknown as EngineInternals;
  if (engine.releasesGradients) return;
  engine.releasesGradients = true;
  const addTapeNode = engine.addTapeNode.bind(engine);
  engine.addTapeNode = (...args: unknown[]) => {
    addTapeNode(...args);
    const tape = engine.state.activeTape;
    const node = tape?.[tape.length - 1];
    const gradient = node?.gradient;
    if (!tape || !node || !gradient) return;
    node.gradient = (dys) => {
      // The engine differentiates one node at a time, in reverse: reaching this node means the
      // previous one of this tape has had every input's gradient computed.
      release(tape);
      const closures = gradient(dys);
      const returned = new Set<tfc.Tensor>();
      const wrapped: Closures = {};
      for (const [input, closure] of Object.entries(closures)) {
        wrapped[input] = () => {
          const dx = closure();
          if (returned.has(dx)) shared.add(dx);
          returned.add(dx);
          return dx;
        };
      }
      if (enabled && engine.state.gradientDepth === 0) {
        pending.set(tape, { tensors: [...dys.filter((dy): dy is tfc.Tensor => dy !== null), ...(node.saved ?? [])], returned });
      }
      return wrapped;
    };
  };
}
