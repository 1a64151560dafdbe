import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'runs/**', 'data/**', 'bench/out/**', 'tmp/**', '**/*.js', '**/*.mjs', '**/*.cjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-syntax': ['error', { selector: 'ExportDefaultDeclaration', message: 'Use named exports.' }],
    },
  },
  {
    // src/core is plain TypeScript: no tfjs, no file system, no sharp.
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: ['@tensorflow/*', 'sharp', 'fs', 'node:*', 'fs/*', 'msgpackr', 'path', 'child_process', 'worker_threads'] }],
    },
  },
  {
    // model code: the TensorFlow.js API only, no disk, no sharp.
    files: ['src/tf/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: ['sharp', 'msgpackr', 'fs', 'fs/*', 'node:fs', 'node:fs/*', '../io/*', '../cli/*'] }],
    },
  },
);
