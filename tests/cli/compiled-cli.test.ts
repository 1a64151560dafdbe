// The installed CLI (bin/vtok.js) runs the compiled code in dist/, which npm's
// `prepare` builds on install; the JSON configs stay in training/configs.
// A config resolved next to the compiled file was not found there.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { packageRoot, shippedConfigFile } from '../../src/io/store';

const root = path.join(__dirname, '..', '..');
const compiled = fs.existsSync(path.join(root, 'dist', 'training', 'ar.js'));
if (!compiled) console.warn('compiled-cli.test: dist/ is missing (run `npm run build`): the compiled-layout checks are skipped');
const itCompiled = compiled ? it : it.skip;

it('finds the package root and the shipped configs from the sources', () => {
  expect(packageRoot()).toBe(root);
  expect(fs.existsSync(shippedConfigFile('ar-fashion-mnist'))).toBe(true);
  expect(fs.existsSync(shippedConfigFile('default'))).toBe(true);
});

itCompiled('the compiled trainers read the shipped configs by name', () => {
  const script = [
    "require('./dist/training/ar.js').resolveArConfig('ar-fashion-mnist-bpe')",
    ".then((c) => require('./dist/training/tokenizer.js').resolveTrainConfig('fashion-mnist').then((t) => console.log(JSON.stringify([c.useBpe, t.imageSize]))))",
    '.catch((e) => { console.error(e.message); process.exit(1); })',
  ].join('');
  const out = execFileSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8' });
  expect(JSON.parse(out.trim())).toEqual([true, 32]);
});

itCompiled('bin/vtok.js answers --help', () => {
  const out = execFileSync(process.execPath, [path.join(root, 'bin', 'vtok.js'), 'ar', 'train', '--help'], { cwd: root, encoding: 'utf8' });
  expect(out).toContain('--tokens');
});
