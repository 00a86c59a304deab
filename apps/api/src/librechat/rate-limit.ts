import { RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import { librechatRateKeyPrefix } from "@codeinterp/queue";
import type { ApiDeps } from "../deps";
import { HttpError } from "../errors";

/** Over its rate: LibreChat shows `retry_after_seconds` (`@librechat/agents` CodeExecutor getRetryAfterSeconds). */
export class RateLimitedError extends HttpError {
  override name = "RateLimitedError";
  constructor(public readonly retryAfterSeconds: number) {
    super(429, "rate_limited", "rate_limited", { retry_after_seconds: retryAfterSeconds });
  }
}

/**
 * A per-LibreChat-user budget of requests per minute, counted in Redis so every API process shares it
 * (rate-limiter-flexible's atomic Redis limiter on the API's own connection). Null when turned off.
 */
export function createRateLimit(
  deps: Pick<ApiDeps, "redis" | "queuePrefix" | "env">,
): ((userId: string) => Promise<void>) | null {
  const points = deps.env.LIBRECHAT_RATE_LIMIT_PER_MINUTE;
  if (points === 0) return null;
  const limiter = new RateLimiterRedis({
    storeClient: deps.redis,
    keyPrefix: librechatRateKeyPrefix(deps.queuePrefix),
    points,
    duration: 60,
  });
  return async (userId) => {
    try {
      await limiter.consume(userId);
    } catch (err) {
      if (err instanceof RateLimiterRes) throw new RateLimitedError(Math.max(1, Math.ceil(err.msBeforeNext / 1000)));
      throw err;
    }
  };
}
