/**
 * A function wrapped so that at most `n` of its calls run at once; further
 * calls wait their turn, first come first served.
 *
 * Example:
 *   const load = limitConcurrency(2, (file: string) => decode(file));
 *   await Promise.all(files.map(load));   // never more than 2 decodes at once
 */
import { checkInt } from './errors';

export function limitConcurrency<A, R>(n: number, fn: (arg: A) => Promise<R>): (arg: A) => Promise<R> {
  checkInt('concurrency', n, 1);
  let running = 0;
  const waiting: (() => void)[] = [];
  const release = (): void => {
    running--;
    const next = waiting.shift();
    if (next) next();
  };
  return (arg: A): Promise<R> =>
    new Promise<R>((resolve, reject) => {
      const start = (): void => {
        running++;
        let p: Promise<R>;
        try {
          p = fn(arg);
        } catch (err) {
          p = Promise.reject(err);
        }
        p.then(resolve, reject).finally(release);
      };
      if (running < n) start();
      else waiting.push(start);
    });
}
