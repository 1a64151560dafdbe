import * as tf from '@tensorflow/tfjs';
import { generationPrompt, streamController } from '../../src/core/ar-streams';
import { argmax, cfgCombine } from '../../src/core/sampling';
import { Vocab } from '../../src/core/vocab';
import { GenerateOptions, generate } from '../../src/tf/ar-generate';
import { Transformer, TransformerConfig } from '../../src/tf/transformer';
import { Letters } from '../helpers/letters';


// 7 specials + 26 letters + 9 visual codes = 42 ids; images are 3x3 grids.
const vocab = Vocab.create({ text: new Letters(), visual: { baseCodes: 9, merges: 0 } });
const grid = { height: 3, width: 3 };
// A larger init than training would use, so logits are far from uniform and sampling paths differ.
const CONFIG: Partial<TransformerConfig> = { vocabSize: vocab.size, contextLength: 32, dModel: 16, nLayers: 2, nHeads: 2, initStd: 0.3 };

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const prompts = [generationPrompt(vocab, 'pig'), generationPrompt(vocab, 'a'), [vocab.bos, vocab.und, ...vocab.encodeText('xyz')]];

describe('generate: the KV cache gives exactly the ids of full recomputation', () => {
  const cases: [string, Partial<GenerateOptions>][] = [
    ['greedy', { temperature: 0 }],
    ['seeded sampling', { temperature: 1, seed: 5 }],
    ['seeded sampling with top-k and top-p', { temperature: 0.8, topK: 10, topP: 0.9, seed: 6 }],
    ['guidance (cond and uncond rows in one batch)', { temperature: 1, seed: 7, guidanceScale: 3, uncondPrompts: prompts.map(() => generationPrompt(vocab, null)) }],
  ];
  for (const [name, opts] of cases) {
    it(name, () => {
      const m = new Transformer(CONFIG, { seed: 1 });
      const before = tf.memory().numTensors;
      const cached = generate(m, prompts, { maxNewTokens: 12, ...opts });
      const full = generate(m, prompts, { maxNewTokens: 12, ...opts, useCache: false });
      expect(cached.tokens).toEqual(full.tokens);
      expect(cached.tokens.map((t) => t.length)).toEqual([12, 12, 12]);
      expect(cached.calls).toBe(12); // prefill + 11 steps (no step after the last id)
      expect(tf.memory().numTensors).toBe(before);
      m.dispose();
    });
  }

  it('with 2D positions and a grammar controller', () => {
    const m = new Transformer({ ...CONFIG, gridRows: 3, gridCols: 3 }, { seed: 2 });
    const opts: Partial<GenerateOptions> = { maxNewTokens: 12, seed: 3, controller: () => streamController(vocab, { grid }), stopIds: [vocab.eoi] };
    const cached = generate(m, prompts.slice(0, 2), opts);
    const full = generate(m, prompts.slice(0, 2), { ...opts, useCache: false });
    expect(cached.tokens).toEqual(full.tokens);
    // The grammar forces exactly 9 visual ids, then <eoi>.
    for (const row of cached.tokens) {
      expect(row.length).toBe(10);
      expect(row.slice(0, 9).every((id) => vocab.kindOf(id) === 'visual')).toBe(true);
      expect(row[9]).toBe(vocab.eoi);
    }
    expect(cached.stopped).toEqual([true, true]);
    m.dispose();
  });
});

describe('generate', () => {
  it('is reproducible: the same seed gives the same samples, another seed others', () => {
    const m = new Transformer(CONFIG, { seed: 1 });
    const a = generate(m, prompts, { maxNewTokens: 10, seed: 42 });
    const b = generate(m, prompts, { maxNewTokens: 10, seed: 42 });
    const c = generate(m, prompts, { maxNewTokens: 10, seed: 43 });
    expect(a.tokens).toEqual(b.tokens);
    expect(a.tokens).not.toEqual(c.tokens);
    m.dispose();
  });

  it('batches rows independently: a prompt gives the same ids alone or left-padded in a batch (greedy)', () => {
    const m = new Transformer(CONFIG, { seed: 4 });
    const batch = generate(m, prompts, { maxNewTokens: 8, temperature: 0 });
    prompts.forEach((p, i) => expect(generate(m, [p], { maxNewTokens: 8, temperature: 0 }).tokens[0]).toEqual(batch.tokens[i]));
    m.dispose();
  });

  it('combines guided logits as uncond + s (cond - uncond) (greedy first id, checked by hand)', () => {
    const m = new Transformer(CONFIG, { seed: 9 });
    const cond = generationPrompt(vocab, 'pig');
    const uncond = generationPrompt(vocab, null);
    const last = (ids: number[]): Float32Array =>
      tf.tidy(() => m.forward(tf.tensor2d([ids], [1, ids.length], 'int32')).slice([0, ids.length - 1, 0], [1, 1, vocab.size]).dataSync() as Float32Array);
    for (const s of [0, 1, 2, 5]) {
      const expected = argmax(cfgCombine(last(cond), last(uncond), s));
      const got = generate(m, [cond], { maxNewTokens: 1, temperature: 0, guidanceScale: s, uncondPrompts: [uncond] }).tokens[0][0];
      expect(got).toBe(expected);
    }
    m.dispose();
  });

  it('stops rows at stop ids and keeps the others going', () => {
    const m = new Transformer(CONFIG, { seed: 1 });
    const free = generate(m, prompts, { maxNewTokens: 10, seed: 11 });
    const stopId = free.tokens[0][2]; // the third id of row 0
    const run = generate(m, prompts, { maxNewTokens: 10, seed: 11, stopIds: [stopId] });
    const firstStop = free.tokens[0].indexOf(stopId);
    expect(run.tokens[0]).toEqual(free.tokens[0].slice(0, firstStop + 1));
    expect(run.stopped[0]).toBe(true);
    // Rows that never draw the stop id run to maxNewTokens.
    run.tokens.forEach((t, i) => {
      if (!t.includes(stopId)) {
        expect(t.length).toBe(10);
        expect(run.stopped[i]).toBe(false);
      }
    });
    m.dispose();
  });

  it('gives clear errors and leaks nothing when it throws', () => {
    const m = new Transformer(CONFIG, { seed: 1 });
    const before = tf.memory().numTensors;
    expect(() => generate(m, prompts, { guidanceScale: 2 })).toThrow(
      'Expected 3 unconditional prompts (one per prompt) when guidanceScale is not 1 for uncondPrompts but received null',
    );
    expect(() => generate(m, [[1, 2, 99]])).toThrow('Expected an id between 0 and 41 at row 0, position 2 but received 99');
    // A controller rejects a malformed prompt (visual id before <boi>).
    expect(() => generate(m, [[vocab.bos, vocab.ranges.visual.start]], { controller: () => streamController(vocab, { grid }) })).toThrow(
      `Malformed stream: visual:0 (id ${vocab.ranges.visual.start}) at position 1 is not allowed before the image`,
    );
    // A constraint that leaves nothing to sample throws inside the loop: the cache is still freed.
    const empty = { push: () => null, allowed: () => new Uint8Array(vocab.size) };
    expect(() => generate(m, prompts, { controller: () => empty })).toThrow('Every id is excluded for the next token');
    expect(() => generate(m, prompts, { maxNewTokens: 0 })).toThrow('Expected integer between 1 and 9007199254740991 for maxNewTokens but received 0 of type number');
    expect(() => generate(m, prompts, { temprature: 1 } as never)).toThrow('Unknown option "temprature" for generate');
    expect(tf.memory().numTensors).toBe(before);
    const gridModel = new Transformer({ ...CONFIG, gridRows: 3, gridCols: 3 });
    expect(() => generate(gridModel, prompts)).toThrow('Expected a row controller giving 2D positions (the model has gridRows > 0) for controller but received null');
    gridModel.dispose();
    m.dispose();
  });
});
