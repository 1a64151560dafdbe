import { checkInt, checkOneOf, resolveOptions, VtokError } from '../../src/core/errors';

describe('option checking', () => {
  it('names the option, the expectation and the received value', () => {
    expect(() => checkInt('codebookSize', 0, 1, 65536)).toThrow(
      'Expected integer between 1 and 65536 for codebookSize but received 0 of type number',
    );
    expect(() => checkOneOf('backend', 'gpu', ['wasm', 'cpu'] as const)).toThrow(
      'Expected one of "wasm", "cpu" for backend but received "gpu" of type string',
    );
  });

  it('rejects unknown keys and fills defaults', () => {
    const defaults = { a: 1, b: 'x' };
    expect(resolveOptions('thing', defaults, { a: 2 })).toEqual({ a: 2, b: 'x' });
    let caught: unknown;
    try {
      resolveOptions('thing', defaults, { c: 3 } as never);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(VtokError);
    expect((caught as VtokError).code).toBe('INVALID_OPTION');
    expect((caught as VtokError).message).toContain('Unknown option "c" for thing');
  });
});
