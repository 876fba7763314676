/**
 * Per-client token buckets, in this process's memory: each client may send `burst` requests at once and
 * `ratePerSecond` on average. With N producer replicas behind a load balancer every replica has its own buckets,
 * so a client may reach N × the configured limit in total (spread evenly, about N × rate); set the per-replica
 * limit to the total you want divided by the replica count. Buckets exist only for authenticated clients, whose
 * number the keys file bounds, so the map cannot be grown by anonymous traffic.
 * @see https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/ (RateLimit-* headers)
 */

export interface RateLimitOptions {
  /** Tokens added per second (sustained requests per second per client). */
  readonly ratePerSecond: number;
  /** Bucket size: requests a client may send at once after being idle. */
  readonly burst: number;
}

export interface RateLimitDecision {
  readonly allowed: boolean;
  /** Whole requests left in the bucket after this one. */
  readonly remaining: number;
  /** Seconds until the bucket is full again. */
  readonly resetSeconds: number;
  /** Seconds until one request is allowed again (0 when allowed). */
  readonly retryAfterSeconds: number;
}

interface Bucket {
  tokens: number;
  updatedMs: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    readonly options: RateLimitOptions,
    private readonly nowMs: () => number = () => performance.now(),
  ) {}

  take(clientId: string): RateLimitDecision {
    const { ratePerSecond, burst } = this.options;
    const now = this.nowMs();
    let bucket = this.buckets.get(clientId);
    if (bucket === undefined) {
      bucket = { tokens: burst, updatedMs: now };
      this.buckets.set(clientId, bucket);
    } else {
      bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.updatedMs) / 1000) * ratePerSecond);
      bucket.updatedMs = now;
    }
    const allowed = bucket.tokens >= 1;
    if (allowed) bucket.tokens -= 1;
    return {
      allowed,
      remaining: Math.floor(bucket.tokens),
      resetSeconds: Math.ceil((burst - bucket.tokens) / ratePerSecond),
      retryAfterSeconds: allowed ? 0 : Math.max(1, Math.ceil((1 - bucket.tokens) / ratePerSecond)),
    };
  }
}
