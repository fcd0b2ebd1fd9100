// Types of the ESM entry (index.mjs): the named exports of the CommonJS build.
export * from "./dist/index.js";
