// ESM entry: the package is compiled to CommonJS; this re-exports it with named exports.
import redis from "./dist/index.js";
export const { redisTransport, RedisTransport, parseRecord, RENEWALS_PER_TTL, STOP_SERVING_AT } = redis;
export default redis.redisTransport;
