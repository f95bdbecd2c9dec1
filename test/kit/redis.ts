/** The tests' Redis: the same real redis-server the bench starts. */
export { startRedis, type RedisServer } from '../../src/cli/bench/redis-server.js';
