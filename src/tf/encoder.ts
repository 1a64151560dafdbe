/**
 * The tokenizer's convolutional encoder (the VQGAN/LlamaGen layout without
 * attention, so it stays fully convolutional and cheap on a CPU): conv_in,
 * then per resolution level `resBlocks` residual blocks and a stride-2
 * convolution (except after the last level), a middle residual block, and two
 * heads, semantic and pixel, each with residual blocks of its own, GroupNorm,
 * SiLU and a 1x1 projection to its latent dimension.
 *
 *   images [B, H, W, C] --trunk--> [B, H/f, W/f, base * mult[-1]]
 *     --semantic head--> [B, h, w, d_s]     --pixel head--> [B, h, w, d_p]
 *
 * The heads' outputs are raw; the quantizer's side l2-normalizes them.
 */

import * as tf from '@tensorflow/tfjs';
import { type TokenizerConfig } from '../core/tokenizer-config';
import { type NormOptions, type ParamSpecs, type Params, addConv, addGroupNorm, addResBlock, conv, groupNorm, resBlock, silu } from './layers';

const HEADS = [
  ['semantic', 'semanticDim'],
  ['pixel', 'pixelDim'],
] as const;

/** Widths of the resolution levels, full resolution first. */
export function levelWidths(c: TokenizerConfig): number[] {
  return c.channelMult.map((m) => c.baseChannels * m);
}

/** Names and shapes of the encoder's weights, in initialization order. */
export function encoderSpecs(c: TokenizerConfig): ParamSpecs {
  const s: ParamSpecs = {};
  const widths = levelWidths(c);
  addConv(s, 'encoder.conv_in', 3, c.imageChannels, widths[0]);
  let cur = widths[0];
  widths.forEach((width, i) => {
    for (let r = 0; r < c.resBlocks; r++) {
      addResBlock(s, `encoder.level${i}.res${r}`, cur, width);
      cur = width;
    }
    if (i < widths.length - 1) addConv(s, `encoder.level${i}.down`, 3, cur, cur);
  });
  addResBlock(s, 'encoder.mid', cur, cur);
  for (const [head, dim] of HEADS) {
    for (let r = 0; r < c.headResBlocks; r++) addResBlock(s, `encoder.${head}.res${r}`, cur, cur);
    addGroupNorm(s, `encoder.${head}.norm`, cur);
    addConv(s, `encoder.${head}.proj`, 1, cur, c[dim]);
  }
  return s;
}

/** images [B, H, W, C] -> raw semantic [B, h, w, d_s] and pixel [B, h, w, d_p] latents. Call inside tf.tidy. */
export function encoderForward(images: tf.Tensor4D, p: Params, c: TokenizerConfig): { semantic: tf.Tensor4D; pixel: tf.Tensor4D } {
  const norm: NormOptions = { groups: c.normGroups, eps: c.normEps };
  const levels = c.channelMult.length;
  let h = conv(images, p, 'encoder.conv_in'); // [B, H, W, base * mult[0]]
  for (let i = 0; i < levels; i++) {
    for (let r = 0; r < c.resBlocks; r++) h = resBlock(h, p, `encoder.level${i}.res${r}`, norm);
    if (i < levels - 1) h = conv(h, p, `encoder.level${i}.down`, 2); // [B, H / 2^(i+1), W / 2^(i+1), width]
  }
  h = resBlock(h, p, 'encoder.mid', norm); // [B, h, w, base * mult[-1]]
  const head = (name: string): tf.Tensor4D => {
    let x = h;
    for (let r = 0; r < c.headResBlocks; r++) x = resBlock(x, p, `encoder.${name}.res${r}`, norm);
    return conv(silu(groupNorm(x, p, `encoder.${name}.norm`, norm.groups, norm.eps)), p, `encoder.${name}.proj`); // [B, h, w, d]
  };
  return { semantic: head('semantic'), pixel: head('pixel') };
}
