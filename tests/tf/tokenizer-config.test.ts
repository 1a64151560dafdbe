import { VtokError } from '../../src/core/errors';
import { TOKENIZER_DEFAULTS, gridShapeFor, kmeansSampleCount, resolveTokenizerConfig } from '../../src/core/tokenizer-config';

describe('TokenizerConfig', () => {
  it('fills documented defaults and returns a fresh object', () => {
    const c = resolveTokenizerConfig({});
    expect(c).toEqual(TOKENIZER_DEFAULTS);
    expect(c).not.toBe(TOKENIZER_DEFAULTS);
    expect(c.channelMult).not.toBe(TOKENIZER_DEFAULTS.channelMult);
    expect(c).toMatchObject({ downsample: 8, semanticDim: 16, pixelDim: 8, codebookSize: 1024, pixelWeight: 1, beta: 0.25, codebookUpdate: 'ema' });
    expect(kmeansSampleCount(c)).toBe(8192);
    expect(kmeansSampleCount({ ...c, kmeansSamples: 5000 })).toBe(5000);
  });

  it('accepts a downsample-16 config with five levels', () => {
    const c = resolveTokenizerConfig({ downsample: 16, channelMult: [1, 1, 2, 2, 4] });
    expect(gridShapeFor(c, 256, 128)).toEqual([16, 8]);
  });

  it.each([
    [{ downsample: 2 }, 'Expected 4, 8 or 16 for downsample but received 2 of type number'],
    [{ downsample: 16 }, 'Expected an array of 5 positive integers (log2(downsample 16) + 1 levels) for channelMult but received an array of length 4'],
    [{ channelMult: [1, 2, 0, 4] }, 'Expected integer between 1 and 64 for channelMult[2] but received 0 of type number'],
    [{ codebookSize: 1 }, 'Expected integer between 2 and 1048576 for codebookSize but received 1 of type number'],
    [{ pixelWeight: -1 }, 'Expected number between 0 and 1000 for pixelWeight but received -1 of type number'],
    [{ codebookUpdate: 'kmeans' }, 'Expected one of "ema", "loss" for codebookUpdate but received "kmeans" of type string'],
    [{ emaDecay: 1 }, 'Expected number between 0.000001 and 0.999999 for emaDecay but received 1 of type number'],
    [{ kmeansInit: 1 }, 'Expected a boolean for kmeansInit but received 1 of type number'],
    [{ kmeansSamples: 100 }, 'Expected 0 (auto) or an integer of at least codebookSize 1024 for kmeansSamples but received 100 of type number'],
    [{ codebookUpdate: 'loss', deadCodeThreshold: 1 }, 'Expected 0 when codebookUpdate is "loss" (it reads EMA cluster sizes) for deadCodeThreshold but received 1 of type number'],
    [{ baseChannels: 24 }, 'Expected normGroups to divide every normalized width, but baseChannels * channelMult[0] is 24 and normGroups is 16'],
    [{ teacherDim: 64, semanticDecoderChannels: 40 }, 'Expected normGroups to divide every normalized width, but semanticDecoderChannels is 40 and normGroups is 16'],
    [{ decoderInput: 'semantic' }, 'Expected one of "pixel", "both" for decoderInput but received "semantic" of type string'],
    [{ resBlocks: 0 }, 'Expected integer between 1 and 16 for resBlocks but received 0 of type number'],
    [{ semanticDecoderKernel: 2 }, 'Expected 1 or 3 for semanticDecoderKernel but received 2 of type number'],
  ])('rejects %j', (bad, message) => {
    expect(() => resolveTokenizerConfig(bad as never)).toThrow(message);
  });

  it('rejects unknown keys with the list of known ones', () => {
    let caught: unknown;
    try {
      resolveTokenizerConfig({ codebook_size: 10 } as never);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(VtokError);
    expect((caught as VtokError).code).toBe('INVALID_OPTION');
    expect((caught as VtokError).message).toMatch(/^Unknown option "codebook_size" for TokenizerConfig; known options are imageChannels, downsample, /);
  });

  it('checks image sizes against the downsample factor', () => {
    const c = resolveTokenizerConfig({});
    expect(gridShapeFor(c, 8, 24)).toEqual([1, 3]);
    expect(() => gridShapeFor(c, 20, 16)).toThrow('Expected image height to be a positive multiple of the downsample factor 8 but received 20');
    expect(() => gridShapeFor(c, 16, 0)).toThrow('Expected image width to be a positive multiple of the downsample factor 8 but received 0');
  });
});
