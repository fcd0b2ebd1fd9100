/**
 * Jest runs the TypeScript tests of every package with ts-jest (transpile only: `npm run build`
 * type-checks the sources first). Tests import the built packages, the same code the forked
 * processes run, so a test never mixes two copies of a class.
 */
/** @type {import('jest').Config} */
module.exports = {
  // Node's, plus a check that each test file closes what it opened (scripts/jest-environment.js).
  testEnvironment: "<rootDir>/scripts/jest-environment.js",
  roots: ["<rootDir>/packages"],
  testMatch: ["**/test/**/*.test.ts"],
  transform: {
    "^.+\\.ts$": ["ts-jest", { tsconfig: "<rootDir>/tsconfig.test.json" }],
  },
  // Multi-process tests fork real processes; on a 2-core machine two test files at once is plenty.
  maxWorkers: 2,
  testTimeout: 60000,
  // The default report, plus the tests under way in OC_RUNNING_FILE: what hung, if a run is killed.
  reporters: ["default", "<rootDir>/scripts/jest-running-reporter.js"],
  modulePathIgnorePatterns: ["<rootDir>/packages/.*/dist/"],
  // One temporary directory per run, removed at the end: no socket files left behind.
  globalSetup: "<rootDir>/scripts/jest-global-setup.js",
  globalTeardown: "<rootDir>/scripts/jest-global-teardown.js",
};
