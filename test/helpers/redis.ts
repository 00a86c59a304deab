/** The Redis the integration tests share (REDIS_URL, else the local one); files outside test/ read it here. */
export const testRedisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
