import { type TrainConfig, resolveTrainConfig } from '../../training/tokenizer';

/** training/configs/tiny.json with overrides: the tokenizer-training tests' small, fast model. */
export async function tinyTrainConfig(over: Partial<TrainConfig> = {}): Promise<Partial<TrainConfig>> {
  return { ...(await resolveTrainConfig('tiny')), ...over };
}
