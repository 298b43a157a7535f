// Learning-rate schedule: linear warmup, then cosine decay to a floor of 10% of the peak.
//
//   step s (1-based, the step about to be taken), peak rate eta, warmup W, last step N:
//   s <= W:  eta * s / W                                     (reaches eta exactly at s = W)
//   s >  W:  eta * (f + (1 - f) * (1 + cos(pi * p)) / 2),   p = (s - W) / (N - W),  f = 0.1
//
// The floor (as in nanoGPT's min_lr = lr / 10, and Chinchilla) keeps the last steps learning
// instead of wasting them at a rate of ~0; the schedule ends at exactly f * eta on step N.

export const MIN_LR_RATIO = 0.1;

export interface ScheduleSettings {
  peak: number;
  warmupSteps: number;
  maxSteps: number;
  minRatio?: number;
}

export function learningRateAt(step: number, { peak, warmupSteps, maxSteps, minRatio = MIN_LR_RATIO }: ScheduleSettings): number {
  if (warmupSteps > 0 && step <= warmupSteps) return (peak * Math.max(0, step)) / warmupSteps;
  if (maxSteps <= warmupSteps) return peak;
  const progress = Math.min(1, (step - warmupSteps) / (maxSteps - warmupSteps));
  return peak * (minRatio + ((1 - minRatio) * (1 + Math.cos(Math.PI * progress))) / 2);
}
