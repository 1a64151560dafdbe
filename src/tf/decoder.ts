/**
 * The pixel decoder (mirror of encoder.ts: conv_in, a middle residual block,
 * per level `resBlocks` residual blocks and, except at full resolution,
 * nearest-neighbour 2x upsampling followed by a 3x3 convolution; GroupNorm,
 * SiLU, conv_out) and the small semantic decoder that maps the semantic code
 * grid to the teacher's feature dimension for the 1 - cosine distillation loss.
 *
 *   codes' vectors [B, h, w, d_p (+ d_s)] --decoder--> images [B, h*f, w*f, C] (unclamped)
 *   semantic codes [B, h, w, d_s] --semantic decoder--> [B, h, w, teacherDim]
 */

import * as tf from '@tensorflow/tfjs';
import { type TokenizerConfig } from '../core/tokenizer-config';
import { levelWidths } from './encoder';
import { type NormOptions, type ParamSpecs, type Params, addConv, addGroupNorm, addResBlock, conv, groupNorm, resBlock, silu, upsample2x } from './layers';

/** Channels the pixel decoder reads: d_p, or d_p + d_s when decoderInput is 'both'. */
export function decoderInputDim(c: TokenizerConfig): number {
  return c.decoderInput === 'both' ? c.pixelDim + c.semanticDim : c.pixelDim;
}

export function decoderSpecs(c: TokenizerConfig): ParamSpecs {
  const s: ParamSpecs = {};
  const widths = levelWidths(c);
  const levels = widths.length;
  let cur = widths[levels - 1];
  addConv(s, 'decoder.conv_in', 3, decoderInputDim(c), cur);
  addResBlock(s, 'decoder.mid', cur, cur);
  for (let i = levels - 1; i >= 0; i--) {
    for (let r = 0; r < c.resBlocks; r++) {
      addResBlock(s, `decoder.level${i}.res${r}`, cur, widths[i]);
      cur = widths[i];
    }
    if (i > 0) addConv(s, `decoder.level${i}.up`, 3, cur, cur);
  }
  addGroupNorm(s, 'decoder.norm_out', cur);
  addConv(s, 'decoder.conv_out', 3, cur, c.imageChannels);
  return s;
}

/** Code vectors [B, h, w, decoderInputDim] -> images [B, h*f, w*f, C], unclamped. Call inside tf.tidy. */
export function decoderForward(z: tf.Tensor4D, p: Params, c: TokenizerConfig): tf.Tensor4D {
  const norm: NormOptions = { groups: c.normGroups, eps: c.normEps };
  const levels = c.channelMult.length;
  let h = conv(z, p, 'decoder.conv_in'); // [B, h, w, base * mult[-1]]
  h = resBlock(h, p, 'decoder.mid', norm);
  for (let i = levels - 1; i >= 0; i--) {
    for (let r = 0; r < c.resBlocks; r++) h = resBlock(h, p, `decoder.level${i}.res${r}`, norm);
    if (i > 0) h = conv(upsample2x(h), p, `decoder.level${i}.up`); // [B, 2h', 2w', width]
  }
  h = silu(groupNorm(h, p, 'decoder.norm_out', norm.groups, norm.eps));
  return conv(h, p, 'decoder.conv_out'); // [B, H, W, C]
}

export function semanticDecoderSpecs(c: TokenizerConfig): ParamSpecs {
  const s: ParamSpecs = {};
  if (c.teacherDim === 0) return s;
  const w = c.semanticDecoderChannels;
  addConv(s, 'semdec.conv_in', c.semanticDecoderKernel, c.semanticDim, w);
  for (let r = 0; r < c.semanticDecoderBlocks; r++) addResBlock(s, `semdec.res${r}`, w, w);
  addGroupNorm(s, 'semdec.norm_out', w);
  addConv(s, 'semdec.proj', 1, w, c.teacherDim);
  return s;
}

/** Semantic code vectors [B, h, w, d_s] -> predicted teacher features [B, h, w, teacherDim]. Call inside tf.tidy. */
export function semanticDecoderForward(qs: tf.Tensor4D, p: Params, c: TokenizerConfig): tf.Tensor4D {
  const norm: NormOptions = { groups: c.normGroups, eps: c.normEps };
  let h = conv(qs, p, 'semdec.conv_in'); // [B, h, w, Cs]
  for (let r = 0; r < c.semanticDecoderBlocks; r++) h = resBlock(h, p, `semdec.res${r}`, norm);
  h = silu(groupNorm(h, p, 'semdec.norm_out', norm.groups, norm.eps));
  return conv(h, p, 'semdec.proj'); // [B, h, w, teacherDim]
}
