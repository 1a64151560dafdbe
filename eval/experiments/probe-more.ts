/**
 * One-off experiment (issue #4, 2026-12-02), not part of vtok: more linear probes than `vtok eval probe`, with
 * the same reading (64x64, crop), standardization and softmax regression, on one tokenizer:
 *   sem_flat / pix_flat: the 8x8 grid of code vectors flattened (no pooling);
 *   semdec_pool: the semantic decoder's output (576-d, a function of the codes only), mean-pooled;
 *   bag: counts of each code id over the grid; img_pool8: the image itself, 8x8 average-pooled (192-d);
 *   teacher_pool (last argument 1): the teacher's own block_13 features, mean-pooled (a ceiling).
 *   npx tsx eval/experiments/probe-more.ts TOKENIZER TRAIN_DIR TEST_DIR LIMIT(0 = all) STORE(- = default) TEACHER(0|1)
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend, shutdownBackend } from '../../src/engine/backend';
import { fitProbe } from '../probe';
import { loadTokenizer } from '../../src/io/tokenizer-bundle';
import { loadTeacher } from '../../src/io/teacher';
import { readLabelledImages } from '../../training/classifier';

const [tokName, trainDir, testDir, limitArg, storeDir, withTeacher] = process.argv.slice(2);
async function main() {
  await initBackend({ backend: 'wasm', threads: Number(process.env.VTOK_THREADS ?? 1) });
  const t = await loadTokenizer(tokName, storeDir && storeDir !== '-' ? { store: storeDir } : {});
  const model = t.model;
  const S = 64;
  const input = { size: S, fit: 'crop' as const, background: '#000000' };
  const limit = Number(limitArg);
  const tr = await readLabelledImages([trainDir], { input, limit });
  const te = await readLabelledImages([testDir], { input, limit });
  const teacher = withTeacher === '1' ? await loadTeacher({ source: 'nsfwjs-mobilenet-v2' }) : undefined;
  const classes = [...new Set(tr.texts)].sort();
  const cls = new Map(classes.map((c, i) => [c, i]));
  type F = Record<string, { x: Float32Array; d: number }>;
  async function feats(imgs: typeof tr): Promise<F> {
    const n = imgs.texts.length, per = S * S * 3, B = 32;
    const out: Record<string, number[]> = {};
    const dims: Record<string, number> = {};
    for (let s = 0; s < n; s += B) {
      const b = Math.min(B, n - s);
      const src = imgs.pixels.subarray(s * per, (s + b) * per);
      const x = Float32Array.from(src, (v) => v / 127.5 - 1);
      const res = tf.tidy(() => {
        const img = tf.tensor4d(x, [b, S, S, 3]);
        const codes = model.encode(img); // [b,8,8]
        const { semantic, pixel } = model.lookup(codes);
        const r: Record<string, tf.Tensor2D> = {
          sem_flat: semantic.reshape([b, -1]),
          pix_flat: pixel.reshape([b, -1]),
          semdec_pool: model.predictSemantic(semantic).mean([1, 2]) as tf.Tensor2D,
          bag: tf.oneHot(codes.reshape([b, -1]).toInt(), model.config.codebookSize).sum(1).toFloat() as tf.Tensor2D,
          img_pool8: tf.avgPool(img, 8, 8, 'valid').reshape([b, -1]),
        };
        if (teacher) r.teacher_pool = teacher.features(img).mean([1, 2]) as tf.Tensor2D;
        return r;
      });
      for (const [k, v] of Object.entries(res)) {
        dims[k] = v.shape[1];
        (out[k] ??= []).push(...(v.dataSync() as Float32Array));
        v.dispose();
      }
    }
    const f: F = {};
    for (const k of Object.keys(out)) f[k] = { x: Float32Array.from(out[k]), d: dims[k] };
    return f;
  }
  const ftr = await feats(tr), fte = await feats(te);
  const ytr = Int32Array.from(tr.texts, (x) => cls.get(x)!), yte = Int32Array.from(te.texts, (x) => cls.get(x)!);
  for (const k of Object.keys(ftr)) {
    const { x, d } = ftr[k];
    const p = fitProbe(x, ytr, fte[k].x, yte, d, classes.length, { l2: 1e-3, maxIters: 500 });
    console.log(`${tokName} ${k} d=${d} train ${p.trainAccuracy.toFixed(4)} test ${p.testAccuracy.toFixed(4)}`);
  }
  teacher?.dispose();
  await shutdownBackend();
}
main().catch((e) => { console.error(e); process.exit(1); });
