import { type Duration } from './quantity';

/**
 * How a target asks whether a container is healthy. Always an exec-form command so that the same check runs
 * unchanged as a Docker HEALTHCHECK, a Compose/Swarm `healthcheck` and a Kubernetes exec probe.
 */
export interface HealthCheckProps {
  /** Exec-form command; exit 0 means healthy. */
  readonly command: readonly string[];
  /** @default Duration.seconds(10) */
  readonly interval?: Duration;
  /** @default Duration.seconds(5) */
  readonly timeout?: Duration;
  /** Consecutive failures before the container is unhealthy. @default 3 */
  readonly retries?: number;
  /** Failures during this time after start do not count. @default Duration.seconds(30) */
  readonly startPeriod?: Duration;
}

/**
 * An HTTP endpoint the same check is also reachable on, so Kubernetes can use a cheap `httpGet` probe instead of
 * forking a process.
 */
export interface HttpProbe {
  readonly port: number;
  readonly readinessPath: string;
  readonly livenessPath: string;
}
