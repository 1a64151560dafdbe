/**
 * Ordered prefetching with bounded memory: runs an async function over a
 * list of items, at most `concurrency` at a time and at most `window` items
 * ahead of the consumer, and hands the results out in list order.
 *
 * This is the queue between image decoding and the model: while the model
 * encodes one batch, the next `window` images are read and decoded, and no
 * more, whatever the size of the dataset.
 *
 * Example:
 *   const p = new OrderedPrefetch(paths, (f) => loadInput(f), { concurrency: 2, window: 48 });
 *   for (let i = 0; i < paths.length; i++) use(await p.next());
 */
import { checkInt } from '../core/errors';

export interface PrefetchOptions {
  /** Items processed at the same time. */
  concurrency: number;
  /** Most items started but not yet taken by next() (in flight plus done). At least concurrency. */
  window: number;
  /**
   * Start items only in runs of at least this many (fewer only at the end
   * of the list), so that a function that gathers the calls of one tick
   * (LoadWorkers: one message per tick) sees them together. Default 1.
   */
  chunk?: number;
}

export class OrderedPrefetch<T, R> {
  private readonly results = new Map<number, Promise<R>>();
  private issued = 0;
  private consumed = 0;
  private inflight = 0;
  private readonly concurrency: number;
  private readonly window: number;
  private readonly chunk: number;
  /** Largest number of results held at once (in flight or waiting), for tests and benchmarks. */
  peakHeld = 0;

  constructor(
    private readonly items: ArrayLike<T>,
    private readonly fn: (item: T, index: number) => Promise<R>,
    options: PrefetchOptions,
  ) {
    this.concurrency = checkInt('concurrency', options.concurrency, 1, 1024);
    this.window = checkInt('window', options.window, this.concurrency);
    this.chunk = checkInt('chunk', options.chunk ?? 1, 1, Math.min(this.window, this.concurrency));
  }

  get length(): number {
    return this.items.length;
  }

  /** Number of results taken so far. */
  get taken(): number {
    return this.consumed;
  }

  private pump(): void {
    const room = Math.min(this.concurrency - this.inflight, this.items.length - this.issued, this.consumed + this.window - this.issued);
    if (room < Math.min(this.chunk, this.items.length - this.issued)) return;
    while (this.inflight < this.concurrency && this.issued < this.items.length && this.issued < this.consumed + this.window) {
      const i = this.issued++;
      this.inflight++;
      let p: Promise<R>;
      try {
        p = this.fn(this.items[i], i);
      } catch (err) {
        p = Promise.reject(err);
      }
      const done = (): void => {
        this.inflight--;
        this.pump();
      };
      p.then(done, done);
      this.results.set(i, p);
      this.peakHeld = Math.max(this.peakHeld, this.results.size);
    }
  }

  /** The result of the next item in list order (rejects if that item's function rejected). */
  next(): Promise<R> {
    if (this.consumed >= this.items.length) return Promise.reject(new RangeError('OrderedPrefetch: no items left'));
    this.pump();
    const i = this.consumed++;
    const p = this.results.get(i) as Promise<R>;
    this.results.delete(i);
    this.pump();
    return p;
  }
}
