// One lint setup: type-aware typescript-eslint with no-floating-promises as an error.
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'node_modules/**',
      'bench/results/**',
      '.modelwatch/**',
      'coverage/**',
      'bin/**',
      'scripts/*.mjs',
      'eslint.config.js',
    ],
  },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/restrict-template-expressions': 'off',
      'no-restricted-syntax': [
        'error',
        { selector: 'ExportAllDeclaration', message: 'Name exports one by one (no export *).' },
      ],
    },
  },
  // The web UI's browser modules are plain JavaScript served as they are: linted without type information.
  { files: ['src/ui/assets/**/*.js'], extends: [tseslint.configs.disableTypeChecked] },
);
