/**
 * Reused Float32Array buffers for decoded images waiting in the prefetch
 * queue of tokenizeDataset (issue #6: peak RSS flat in the number of images).
 *
 * Why: a decoded image waits in the queue for up to a few batches, long
 * enough for V8 to promote a fresh array to its old generation, where a dead
 * ArrayBuffer is freed only by a major collection, which a small JS heap
 * seldom triggers. With a fresh array per image, ArrayBuffers grew by about
 * 6 KB per Fashion-MNIST image (32 x 32) until a major collection, up to
 * ~65 MB over 10,000 images. Copying each image into a reused buffer right
 * after decoding lets the decoder's array die young (freed by the next
 * scavenge); the pool itself never holds more buffers than were out at once.
 *
 * Example:
 *   const pool = new PixelPool(S * S * 3);
 *   const px = pool.take();   // a buffer of S * S * 3 floats (old contents)
 *   px.set(decoded);          // ... later, when the batch has copied it:
 *   pool.give(px);
 *   pool.allocated            // 1: buffers ever created
 */
import { checkInt, invalidOption } from '../core/errors';

export class PixelPool {
  private readonly free: Float32Array[] = [];
  /** Buffers created so far: the most that were taken and not yet given back at once. */
  allocated = 0;
  readonly size: number;

  constructor(size: number) {
    this.size = checkInt('size', size, 1);
  }

  /** A buffer of `size` floats, reused when one was given back (its contents are stale). */
  take(): Float32Array {
    const b = this.free.pop();
    if (b !== undefined) return b;
    this.allocated++;
    return new Float32Array(this.size);
  }

  /** Gives a buffer from take() back; it must not be used afterwards. */
  give(b: Float32Array): void {
    if (!(b instanceof Float32Array) || b.length !== this.size) throw invalidOption('buffer', `a Float32Array of ${this.size} floats from this pool`, b);
    this.free.push(b);
  }

  /** A copy of `src` (length `size`) in a pooled buffer. */
  copy(src: Float32Array): Float32Array {
    if (src.length !== this.size) throw invalidOption('pixels', `${this.size} floats`, src);
    const b = this.take();
    b.set(src);
    return b;
  }
}
