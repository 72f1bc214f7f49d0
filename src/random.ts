// The project's one seeded generator (init, splits, shuffles, dropout seeds, augmentation, test
// data): mulberry32, whose whole state is one uint32, so a stream is fixed by a seed and a
// resumed run draws exactly the numbers an uninterrupted run would have drawn. Independent
// streams come from `deriveSeed(seed, stream ids...)`.

/** mulberry32: fast, 32-bit state, good enough for init, shuffling and augmentation. */
export class Rng {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** Standard normal (Box-Muller; one draw per call keeps the state simple). */
  normal(): number {
    const u = 1 - this.next(); // (0, 1]: log(0) is -Infinity
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** A 31-bit seed for tfjs ops that take one (dropout). */
  seed(): number {
    return Math.floor(this.next() * 0x7fffffff);
  }

  get state(): number {
    return this.#state;
  }

  set state(s: number) {
    this.#state = s >>> 0;
  }
}

/** Mixes a base seed with stream ids (epoch, step, purpose) into an independent seed. */
export function deriveSeed(seed: number, ...ids: number[]): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const id of ids) {
    h = Math.imul(h ^ (id >>> 0), 0x85ebca6b) >>> 0;
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/**
 * Uniform [0, 1) draws as a plain function (for the dataset helpers), seeded by any safe integer:
 * both 32-bit halves of the seed are mixed in, so 0 and 2^32 give unrelated streams.
 */
export function createRng(seed: number): () => number {
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`);
  const rng = new Rng(deriveSeed(seed >>> 0, Math.floor(seed / 2 ** 32) >>> 0));
  return () => rng.next();
}
