import * as tf from '@tensorflow/tfjs';
import { type TokenizerConfig } from '../../src/core/tokenizer-config';
import { type TokenizerModel, createTokenizerModel } from '../../src/tf/tokenizer';

/** A tiny config: widths 4, 4, 8, 8 (downsample 8), K 16, d_s 4, d_p 3, a 5-channel teacher. */
const TINY: Partial<TokenizerConfig> = {
  baseChannels: 4,
  channelMult: [1, 1, 2, 2],
  normGroups: 2,
  codebookSize: 16,
  semanticDim: 4,
  pixelDim: 3,
  teacherDim: 5,
  semanticDecoderChannels: 4,
  kmeansInit: false,
};

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function images(seed: number, B = 2, S = 16): tf.Tensor4D {
  return tf.randomUniform([B, S, S, 3], -1, 1, 'float32', seed) as tf.Tensor4D;
}

function maxAbs(t: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(t)).dataSync()[0]);
}

/** Names of the encoder's variables on the path to the pixel latent (every encoder weight except the semantic head's). */
function encoderPixelPath(model: TokenizerModel): string[] {
  return Object.keys(model.variables).filter((n) => n.startsWith('encoder.') && !n.startsWith('encoder.semantic.'));
}

describe('TokenizerModel: semantic decoder kernel', () => {
  // Per-position decoding: with a 1x1 input convolution and no residual blocks, moving the codes
  // around the grid moves the predictions with them (GroupNorm's statistics do not depend on the
  // order); the 3x3 default reads neighbours, so the same permutation changes its predictions.
  function permutedGap(kernel: 1 | 3): number {
    const model = createTokenizerModel({ ...TINY, semanticDecoderKernel: kernel, semanticDecoderBlocks: kernel === 1 ? 0 : 1 }, 2);
    try {
      return tf.tidy(() => {
        const v = tf.randomNormal([1, 3, 3, 4], 0, 1, 'float32', 5) as tf.Tensor4D; // [1, 3, 3, d_s]
        const order = tf.tensor1d([4, 0, 8, 2, 6, 1, 7, 3, 5], 'int32');
        const moved = tf.gather(v.reshape([9, 4]), order).reshape([1, 3, 3, 4]) as tf.Tensor4D;
        const a = tf.gather(model.predictSemantic(v).reshape([9, 5]), order); // [9, teacherDim]
        const b = model.predictSemantic(moved).reshape([9, 5]);
        return maxAbs(tf.sub(a, b));
      });
    } finally {
      model.dispose();
    }
  }

  it('reads each code on its own with kernel 1 and no blocks, and neighbours with kernel 3', () => {
    const k1 = createTokenizerModel({ ...TINY, semanticDecoderKernel: 1, semanticDecoderBlocks: 0 }, 2);
    expect(k1.variables['semdec.conv_in.w'].shape).toEqual([1, 1, 4, 4]);
    expect(Object.keys(k1.variables).some((n) => n.startsWith('semdec.res'))).toBe(false);
    k1.dispose();
    expect(permutedGap(1)).toBeLessThan(1e-5);
    expect(permutedGap(3)).toBeGreaterThan(1e-2);
  });
});

describe('TokenizerModel: structure', () => {
  it('has the documented weights, seeded identically, and the code grid of the downsample factor', () => {
    const a = createTokenizerModel(TINY, 3);
    const b = createTokenizerModel(TINY, 3);
    const c = createTokenizerModel(TINY, 4);
    const names = Object.keys(a.variables);
    expect(names.slice(0, 4)).toEqual(['encoder.conv_in.w', 'encoder.conv_in.b', 'encoder.level0.res0.norm1.g', 'encoder.level0.res0.norm1.b']);
    expect(names).toContain('encoder.level2.down.w');
    expect(names).not.toContain('encoder.level3.down.w'); // no downsampling after the last level
    expect(names).toContain('encoder.level2.res0.skip.w'); // 4 -> 8 channels
    expect(names).toContain('decoder.level1.up.w');
    expect(names).not.toContain('decoder.level0.up.w');
    expect(names.slice(-2)).toEqual(['quantizer.semantic', 'quantizer.pixel']);
    expect(a.variables['encoder.semantic.proj.w'].shape).toEqual([1, 1, 8, 4]);
    expect(a.variables['encoder.pixel.proj.w'].shape).toEqual([1, 1, 8, 3]);
    expect(a.variables['decoder.conv_in.w'].shape).toEqual([3, 3, 3, 8]);
    expect(a.variables['semdec.proj.w'].shape).toEqual([1, 1, 4, 5]);
    expect(a.gridShape(16, 32)).toEqual([2, 4]);
    // 'ema' mode: the codebooks are not optimizer variables.
    expect(a.trainableVariables().length).toBe(names.length - 2);
    const wa = a.getWeights();
    expect(b.getWeights()).toEqual(wa);
    expect(c.getWeights()['encoder.conv_in.w'].data).not.toEqual(wa['encoder.conv_in.w'].data);
    // Codebook rows start on the unit sphere.
    const cb = wa['quantizer.semantic'].data;
    for (let k = 0; k < 16; k++) expect(Math.hypot(...Array.from(cb.slice(k * 4, k * 4 + 4)))).toBeCloseTo(1, 6);
    [a, b, c].forEach((m) => m.dispose());
  });

  it('forward shapes, and lookup(encode(x)) equals the quantized output of forward', () => {
    const model = createTokenizerModel(TINY, 1);
    const x = images(1);
    const out = model.forward(x);
    expect(out.recon.shape).toEqual([2, 16, 16, 3]);
    expect(out.codes.shape).toEqual([2, 2, 2]);
    expect(out.codes.dtype).toBe('int32');
    expect(out.zs.shape).toEqual([2, 2, 2, 4]);
    expect(out.qp.shape).toEqual([2, 2, 2, 3]);
    expect(out.semantic?.shape).toEqual([2, 2, 2, 5]);
    const codes = model.encode(x);
    expect(Array.from(codes.dataSync())).toEqual(Array.from(out.codes.dataSync()));
    const v = model.lookup(codes);
    expect(Array.from(v.semantic.dataSync())).toEqual(Array.from(out.qs.dataSync()));
    expect(Array.from(v.pixel.dataSync())).toEqual(Array.from(out.qp.dataSync()));
    // decode(codes) is the forward reconstruction, clamped.
    const dec = model.decode(codes);
    expect(Array.from(dec.dataSync())).toEqual(Array.from(tf.tidy(() => tf.clipByValue(out.recon, -1, 1)).dataSync()));
    // The latents are unit vectors.
    const norms = tf.tidy(() => tf.sqrt(tf.sum(tf.square(out.zp), -1)).dataSync());
    for (const n of norms) expect(n).toBeCloseTo(1, 5);
    expect(out.losses.commit.shape).toEqual([]);
    tf.dispose([x, codes, v.semantic, v.pixel, dec, out as never]);
    model.dispose();
  });
});

describe('TokenizerModel: gradients', () => {
  it('the straight-through gradient reaches the encoder and equals dL/dq pushed back through the encoder', () => {
    const model = createTokenizerModel(TINY, 2);
    const x = images(2);
    const encVars = encoderPixelPath(model).map((n) => model.variables[n]);
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const recLoss = (recon: tf.Tensor): tf.Scalar => tf.mean(tf.square(tf.sub(recon, x)));
      // g1: gradient of the reconstruction loss through the quantizer (straight-through).
      const g1 = tf.variableGrads(() => recLoss(model.forward(x).recon), encVars).grads;
      // g2: dL/dq at the chosen codes, then the vector-Jacobian product of the encoder's z_p with it.
      const { pixel: q } = model.lookup(model.encode(x));
      const dq = tf.grad((v: tf.Tensor) => recLoss(model.decodeVectors(v as tf.Tensor4D)))(q);
      const g2 = tf.variableGrads(() => tf.sum(tf.mul(model.latents(x).zp, dq)), encVars).grads;
      for (const v of encVars) {
        const a = g1[v.name];
        expect(maxAbs(a)).toBeGreaterThan(0); // reaches every encoder weight on the pixel path
        const scale = maxAbs(a);
        expect(maxAbs(tf.sub(a, g2[v.name])) / scale).toBeLessThan(1e-4);
      }
    });
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    model.dispose();
  });

  it('with decoderInput "both" the reconstruction reaches the semantic head too; the distillation head reaches it always', () => {
    const model = createTokenizerModel({ ...TINY, decoderInput: 'both' }, 5);
    const x = images(5);
    const semHead = Object.keys(model.variables).filter((n) => n.startsWith('encoder.semantic.'));
    tf.tidy(() => {
      const { grads } = tf.variableGrads(() => tf.mean(tf.abs(tf.sub(model.forward(x).recon, x))), semHead.map((n) => model.variables[n]));
      for (const n of semHead) expect(maxAbs(grads[model.variables[n].name])).toBeGreaterThan(0);
    });
    const pixelOnly = createTokenizerModel(TINY, 5);
    tf.tidy(() => {
      const vars = semHead.map((n) => pixelOnly.variables[n]);
      const { grads } = tf.variableGrads(() => tf.mean(tf.square(pixelOnly.forward(x).semantic as tf.Tensor)), vars);
      for (const v of vars) expect(maxAbs(grads[v.name])).toBeGreaterThan(0);
    });
    x.dispose();
    model.dispose();
    pixelOnly.dispose();
  });

  it("codebookUpdate 'loss': the codebooks are trainable and learn from the codebook loss only", () => {
    const model = createTokenizerModel({ ...TINY, codebookUpdate: 'loss' }, 6);
    const x = images(6);
    const cbs = [model.variables['quantizer.semantic'], model.variables['quantizer.pixel']];
    expect(model.trainableVariables()).toEqual(expect.arrayContaining(cbs));
    tf.tidy(() => {
      const cb = tf.variableGrads(() => model.forward(x).losses.codebook, cbs).grads;
      for (const v of cbs) expect(maxAbs(cb[v.name])).toBeGreaterThan(0);
      const rec = tf.variableGrads(() => tf.mean(tf.square(tf.sub(model.forward(x).recon, x))), cbs).grads;
      // Straight-through: reconstruction does not move the codebooks (E_p gets zeros; E_s is not even on the path with decoderInput 'pixel').
      expect(maxAbs(rec[cbs[1].name])).toBe(0);
      expect(rec[cbs[0].name]).toBeFalsy();
    });
    x.dispose();
    model.dispose();
  });
});

describe('TokenizerModel: save, restore, leaks, errors', () => {
  it('getWeights/setWeights round trip gives identical codes and images; training state round-trips too', () => {
    const a = createTokenizerModel(TINY, 7);
    const b = createTokenizerModel(TINY, 8);
    const x = images(7);
    // Give the quantizer some history first.
    const out = a.forward(x);
    a.updateCodebooks(a.readBatch(out));
    tf.dispose(out as never);
    b.setWeights(a.getWeights());
    b.setTrainingState(a.getTrainingState());
    tf.tidy(() => {
      const ca = a.encode(x);
      expect(Array.from(b.encode(x).dataSync())).toEqual(Array.from(ca.dataSync()));
      expect(Array.from(b.decode(ca).dataSync())).toEqual(Array.from(a.decode(ca).dataSync()));
    });
    expect(b.getTrainingState()).toEqual(a.getTrainingState());
    expect(b.codebookStats()).toEqual(a.codebookStats());
    x.dispose();
    a.dispose();
    b.dispose();
  });

  it('rejects weights of another config and changes nothing', () => {
    const a = createTokenizerModel(TINY, 1);
    const other = createTokenizerModel({ ...TINY, pixelDim: 2 }, 1);
    const before = a.getWeights();
    expect(() => a.setWeights(other.getWeights())).toThrow('Expected weight encoder.pixel.proj.w to be float32 [1, 1, 8, 3] but received float32 [1, 1, 8, 2]');
    const { 'decoder.conv_out.b': _gone, ...rest } = before;
    expect(() => a.setWeights({ ...rest, extra: before['decoder.conv_out.b'] })).toThrow('Weights do not match the tokenizer config: missing decoder.conv_out.b; unknown extra');
    expect(a.getWeights()).toEqual(before);
    a.dispose();
    other.dispose();
  });

  it('leaks no tensors across any public call', () => {
    // k-means runs on the second update (8 latents per batch, 16 needed), so its tensors are counted too.
    const model = createTokenizerModel({ ...TINY, kmeansInit: true, kmeansSamples: 16 }, 9);
    const x = images(9);
    const opt = tf.train.adam(1e-3);
    const step = (): void => {
      let seen;
      const loss = opt.minimize(
        () => {
          const out = model.forward(x);
          seen = model.readBatch(out);
          const rec = tf.mean(tf.abs(tf.sub(out.recon, x)));
          const sem = tf.mean(tf.square(out.semantic as tf.Tensor));
          return tf.addN([rec, sem, out.losses.commit, out.losses.codebook]) as tf.Scalar;
        },
        true,
        model.trainableVariables(),
      );
      loss?.dispose();
      model.updateCodebooks(seen!);
    };
    step(); // the optimizer creates its slots once
    const before = tf.memory().numTensors;
    step();
    expect(model.quantizer.initialized).toBe(true);
    const codes = model.encode(x);
    const v = model.lookup(codes);
    const results = [codes, v.semantic, v.pixel, model.decode(codes), model.decodeVectors(v.pixel), model.predictSemantic(v.semantic)];
    const lat = model.latents(x);
    results.push(lat.zs, lat.zp);
    const out = model.forward(x);
    expect(tf.memory().numTensors).toBe(before + results.length + 9); // exactly what was returned: 8 + forward's 9
    tf.dispose([results, out as never]);
    model.setWeights(model.getWeights());
    model.setTrainingState(model.getTrainingState());
    model.codebookStats();
    expect(() => model.encode(images(1, 1, 12))).toThrow();
    expect(tf.memory().numTensors).toBe(before + 1); // the bad-size image made by the line above
    const varsBefore = tf.memory().numTensors;
    model.dispose();
    model.dispose();
    expect(tf.memory().numTensors).toBe(varsBefore - Object.keys(model.variables).length);
    x.dispose();
    opt.dispose();
  });

  it('names bad inputs', () => {
    const model = createTokenizerModel(TINY, 1);
    tf.tidy(() => {
      expect(() => model.encode(tf.zeros([1, 12, 16, 3]) as tf.Tensor4D)).toThrow('Expected image height to be a positive multiple of the downsample factor 8 but received 12');
      expect(() => model.encode(tf.zeros([1, 16, 16, 4]) as tf.Tensor4D)).toThrow('Expected images as a float32 tensor [B, H, W, 3] but received float32 [1, 16, 16, 4]');
      expect(() => model.encode(tf.zeros([1, 16, 16, 3], 'int32') as tf.Tensor4D)).toThrow('Expected images as a float32 tensor [B, H, W, 3] but received int32 [1, 16, 16, 3]');
      expect(() => model.decode(tf.tensor3d([0, 16], [1, 1, 2], 'int32'))).toThrow('Expected codes between 0 and 15 but received 16');
      expect(() => model.decode(tf.tensor3d([-1, 0], [1, 1, 2], 'int32'))).toThrow('Expected codes between 0 and 15 but received -1');
      expect(() => model.lookup(tf.tensor3d([0, 1], [1, 1, 2], 'float32'))).toThrow('Expected codes as an int32 tensor [B, h, w] but received float32 [1, 1, 2]');
    });
    const plain = createTokenizerModel({ ...TINY, teacherDim: 0 }, 1);
    expect(Object.keys(plain.variables).some((n) => n.startsWith('semdec.'))).toBe(false);
    tf.tidy(() => {
      expect(() => plain.predictSemantic(tf.zeros([1, 1, 1, 4]) as tf.Tensor4D)).toThrow('This tokenizer has no semantic decoder (teacherDim is 0)');
      expect(plain.forward(tf.zeros([1, 8, 8, 3]) as tf.Tensor4D).semantic).toBeNull();
    });
    model.dispose();
    plain.dispose();
    expect(() => model.encode(images(1))).toThrow('This tokenizer model was disposed');
  });
});
