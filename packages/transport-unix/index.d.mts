// Types of the ESM entry (index.mjs): the named exports of the CommonJS build, and its default.
export * from "./dist/index.js";
export { unixTransport as default } from "./dist/index.js";
