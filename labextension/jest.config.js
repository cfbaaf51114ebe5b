// The frontend's unit tests (src/__tests__/*.spec.ts): the pure logic and the DOM view, in jsdom.
// The modules under test import nothing of JupyterLab (ESM packages jest would have to transform).
module.exports = {
  testEnvironment: 'jsdom',
  roots: ['<rootDir>/src'],
  testMatch: ['**/__tests__/**/*.spec.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }] }
};
