// Types of the ESM entry (index.mjs): the named exports of the CommonJS build, and its default.
export * from "./dist/index.js";
export { redisTransport as default } from "./dist/index.js";
