import type { Argv, CommandModule } from 'yargs';
import {
  formatStoreList,
  formatStoreShow,
  formatStoreVerify,
  storeList,
  storeShow,
  storeVerify,
} from '../../io/store-report';
import { printResult, type GlobalArgs } from '../output';

interface StoreArgs extends GlobalArgs {
  store?: string;
  ref?: string;
}

const storeOption = (y: Argv<object>) =>
  y.option('store', {
    type: 'string',
    describe: 'User store folder (default: VTOK_STORE, else ~/.vtok/store); the shipped codebooks/ are searched after it',
  });

/** `vtok store ls | show REF | verify [REF]`. */
export const storeCommand: CommandModule<object, StoreArgs> = {
  command: 'store <action>',
  describe: 'List, inspect and verify tokenizer bundles in the codebook store',
  builder: (y) =>
    storeOption(y)
      .command({
        command: 'ls',
        describe: 'List every bundle: id, names, kind, size, config',
        handler: async (args: StoreArgs) => {
          const r = await storeList(args.store);
          printResult(args, r, () => formatStoreList(r));
        },
      } as CommandModule<object, StoreArgs>)
      .command({
        command: 'show <ref>',
        describe: 'Show one bundle (REF: a name, a full id, or a unique id prefix of 8+ hex digits)',
        handler: async (args: StoreArgs) => {
          const r = await storeShow(args.store, String(args.ref));
          printResult(args, r, () => formatStoreShow(r));
        },
      } as CommandModule<object, StoreArgs>)
      .command({
        command: 'verify [ref]',
        describe: 'Check sizes, versions and hashes of one bundle or of all; exit code 1 if any is damaged',
        handler: async (args: StoreArgs) => {
          const r = await storeVerify(args.store, args.ref);
          printResult(args, r, () => formatStoreVerify(r));
          if (!r.ok) process.exitCode = 1;
        },
      } as CommandModule<object, StoreArgs>)
      .example('$0 store ls', 'every bundle in the user store and the shipped one')
      .example('$0 store show default --json', 'the default tokenizer, as JSON')
      .example('$0 store verify', 'check every bundle') as never,
  handler: () => undefined,
};
