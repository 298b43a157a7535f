// The shape of an architecture as the memory plan, the estimate and the UI see it, whatever the family
// calls its fields: a leaf, so that inspection and the memory plan can both read it.
export type Family = 'gpt2' | 'llama' | 'bert';

/** What the estimate and the UI need of one architecture, whatever the family calls its fields. */
export interface ArchitectureShape {
  family: Family | null;
  layers: number;
  hiddenSize: number;
  heads: number;
  kvHeads: number;
  vocabSize: number;
  maxPositions: number;
  /** The MLP's hidden width (GPT-2 n_inner, Llama/BERT intermediate_size). */
  intermediateSize: number;
  /** [in, out] of each linear layer the family's default LoRA targets adapt, in one transformer layer. */
  defaultTargetShapes: [number, number][];
}
