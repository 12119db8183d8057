/**
 * Unit tests of the pure modules (rendering, tag helpers) in jsdom, compiled by ts-jest.
 * The JupyterLab-dependent glue (src/index.ts) is covered by tests/test_labextension_e2e.py.
 */
module.exports = {
  testEnvironment: 'jsdom',
  roots: ['<rootDir>/src'],
  testRegex: '/__tests__/.*\\.spec\\.ts$',
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }]
  }
};
