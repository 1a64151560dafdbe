import * as tf from '@tensorflow/tfjs';
import { ArBatch } from '../../src/core/ar-streams';
import { arLoss, arLossFn, scoreContinuations } from '../../src/tf/ar-loss';
import { Transformer, TransformerConfig } from '../../src/tf/transformer';

const CONFIG: Partial<TransformerConfig> = { vocabSize: 20, contextLength: 16, dModel: 16, nLayers: 1, nHeads: 2, initStd: 0.3 };

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const batch: ArBatch = {
  batch: 2,
  length: 4,
  inputs: Int32Array.from([1, 5, 6, 7, 1, 8, 9, 0]),
  targets: Int32Array.from([5, 6, 7, 2, 8, 9, 2, 0]),
  weights: Float32Array.from([0, 1, 1, 1, 0, 1, 1, 0]),
  pos2d: null,
};

/** The loss computed in float64 from forward()'s logits. */
function referenceLoss(model: Transformer, b: ArBatch): number {
  const logits = tf.tidy(() => model.forward(tf.tensor2d(b.inputs, [b.batch, b.length], 'int32')).dataSync() as Float32Array);
  const V = model.config.vocabSize;
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.batch * b.length; i++) {
    if (b.weights[i] === 0) continue;
    const row = logits.subarray(i * V, (i + 1) * V);
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0));
    num += b.weights[i] * (lse - row[b.targets[i]]);
    den += b.weights[i];
  }
  return num / den;
}

describe('arLoss', () => {
  it('is ln V for a model whose logits are all equal', () => {
    const m = new Transformer(CONFIG);
    const w = m.getWeights();
    m.setWeights(Object.fromEntries(Object.entries(w).map(([k, v]) => [k, k.endsWith('.g') ? v : new Float32Array(v.length)])));
    const loss = arLoss(m, batch);
    expect(loss.dataSync()[0]).toBeCloseTo(Math.log(20), 6);
    loss.dispose();
    m.dispose();
  });

  it('equals the masked mean cross-entropy computed by hand, ignoring unweighted targets', () => {
    const m = new Transformer(CONFIG, { seed: 3 });
    const loss = arLoss(m, batch);
    expect(Math.abs(loss.dataSync()[0] - referenceLoss(m, batch))).toBeLessThan(1e-5);
    // Changing a target with weight 0 changes nothing.
    const other = { ...batch, targets: Int32Array.from(batch.targets).fill(11, 0, 1) };
    const loss2 = arLoss(m, other);
    expect(loss2.dataSync()[0]).toBe(loss.dataSync()[0]);
    tf.dispose([loss, loss2]);
    m.dispose();
  });

  it('works with an optimizer and leaks nothing', () => {
    const m = new Transformer(CONFIG, { seed: 3 });
    const opt = tf.train.adam(0.01);
    const first = referenceLoss(m, batch);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 20; i++) opt.minimize(arLossFn(m, batch), false, m.trainableVariables());
    const afterSteps = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) opt.minimize(arLossFn(m, batch), false, m.trainableVariables());
    expect(tf.memory().numTensors).toBe(afterSteps); // optimizer slots are created once, then nothing grows
    expect(afterSteps - before).toBe(2 * m.trainableVariables().length); // Adam's m and v per weight (its beta powers exist from the start)
    expect(referenceLoss(m, batch)).toBeLessThan(first / 2);
    opt.dispose();
    m.dispose();
  });

  it('gives clear errors', () => {
    const m = new Transformer(CONFIG);
    expect(() => arLoss(m, { ...batch, weights: new Float32Array(8) })).toThrow(
      'Expected at least one target position (positive weight) for batch.weights but received a Float32Array of length 8',
    );
    expect(() => arLoss(m, { ...batch, length: 5 })).toThrow('Expected inputs, targets and weights of 2 x 5 values for batch but received a Int32Array of length 8');
    m.dispose();
  });
});

describe('scoreContinuations', () => {
  it('gives log-probabilities: single ids sum to probability 1, longer candidates follow the chain rule', () => {
    const m = new Transformer(CONFIG, { seed: 5 });
    const prompts = [[1, 4, 9], [1, 3]];
    const singles = Array.from({ length: 20 }, (_, i) => [i]);
    const s = scoreContinuations(m, prompts, singles, { batchRows: 7 });
    for (let p = 0; p < 2; p++) {
      let total = 0;
      for (let c = 0; c < 20; c++) total += Math.exp(s[p * 20 + c]);
      expect(total).toBeCloseTo(1, 5);
    }
    // log p(a b | prompt) = log p(a | prompt) + log p(b | prompt a).
    const [ab] = scoreContinuations(m, [[1, 4, 9]], [[6, 8]]);
    const [b] = scoreContinuations(m, [[1, 4, 9, 6]], [[8]]);
    expect(ab).toBeCloseTo(s[6] + b, 5);
    m.dispose();
  });
});
