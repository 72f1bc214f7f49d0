// Learning-rate schedules and early stopping: pure functions and small classes with plain-JSON
// state, so checkpoints can store them and tests can drive them with scripted loss curves.

export type ScheduleName = "none" | "cosine" | "plateau";

/**
 * Cosine decay per epoch (0-based): baseLr at epoch 0, falling to minLr after the last epoch.
 * lr(e) = minLr + (baseLr - minLr) * (1 + cos(pi * e / epochs)) / 2
 */
export function cosineLr(epoch: number, epochs: number, baseLr: number, minLr = 0): number {
  const t = Math.min(Math.max(epoch / Math.max(epochs, 1), 0), 1);
  return minLr + (baseLr - minLr) * 0.5 * (1 + Math.cos(Math.PI * t));
}

export interface PlateauState {
  lr: number;
  best: number;
  wait: number;
  cooldown: number;
}

/**
 * Keras ReduceLROnPlateau (mode "min") on a metric to minimise (validation loss), step for step:
 * an epoch in cooldown counts down and clears `wait`; an epoch that does not beat `best - minDelta`
 * outside cooldown adds to `wait`, and when `wait >= patience` the LR is cut (if above minLr),
 * cooldown starts and `wait` clears. With patience p the cut comes on the p-th epoch without gain.
 */
export class ReduceOnPlateau {
  state: PlateauState;

  constructor(
    baseLr: number,
    readonly opts: {
      factor?: number;
      patience?: number;
      minLr?: number;
      minDelta?: number;
      cooldown?: number;
    } = {},
  ) {
    this.state = { lr: baseLr, best: Infinity, wait: 0, cooldown: 0 };
  }

  /** Feeds one epoch's metric; returns the learning rate for the next epoch. */
  update(metric: number): number {
    const { factor = 0.5, patience = 2, minLr = 1e-6, minDelta = 1e-4, cooldown = 0 } = this.opts;
    const s = this.state;
    if (s.cooldown > 0) {
      s.cooldown--;
      s.wait = 0;
    }
    if (metric < s.best - minDelta) {
      s.best = metric;
      s.wait = 0;
    } else if (s.cooldown === 0 && ++s.wait >= patience && s.lr > minLr) {
      s.lr = Math.max(s.lr * factor, minLr);
      s.wait = 0;
      s.cooldown = cooldown;
    }
    return s.lr;
  }
}

export interface EarlyStoppingState {
  best: number;
  bestEpoch: number;
  wait: number;
}

/**
 * Stops when the monitored metric (to maximise: validation accuracy) has not improved by more
 * than minDelta for `patience` epochs. `update` says whether this epoch is the new best.
 */
export class EarlyStopping {
  state: EarlyStoppingState = { best: -Infinity, bestEpoch: -1, wait: 0 };

  constructor(readonly patience: number, readonly minDelta = 0) {}

  update(epoch: number, metric: number): { improved: boolean; stop: boolean } {
    const s = this.state;
    if (metric > s.best + this.minDelta) {
      s.best = metric;
      s.bestEpoch = epoch;
      s.wait = 0;
      return { improved: true, stop: false };
    }
    s.wait++;
    return { improved: false, stop: this.patience > 0 && s.wait >= this.patience };
  }
}
