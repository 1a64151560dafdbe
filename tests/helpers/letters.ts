import type { TextTokenizer } from '../../src/core/vocab';

/** Toy text tokenizer: single letters a-z as text ids 0..25 (a stand-in for an adapter over another library). */
export class Letters implements TextTokenizer {
  readonly kind = 'letters';
  readonly size = 26;
  encode(text: string): number[] {
    return Array.from(text, (ch) => ch.charCodeAt(0) - 97);
  }
  decode(ids: ArrayLike<number>): string {
    return Array.from(ids, (i) => String.fromCharCode(97 + i)).join('');
  }
  serialize() {
    return { kind: 'letters' };
  }
}
