import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { ErrorCode } from '../common/errors.js';
import type { Config } from '../config/schema.js';

/** The proxy roles the proxy thread of `modelwatch up` can run. */
export const ProxyThreadRoles = ['sidecar', 'grpc'] as const;
/** One of {@link ProxyThreadRoles}. */
export type ProxyThreadRole = (typeof ProxyThreadRoles)[number];

/** What the proxy thread's entry receives as `workerData`. */
export interface ProxyThreadData {
  config: Config;
}

/** An error as it crosses the thread boundary. */
export interface PostedError {
  code: ErrorCode;
  message: string;
  field?: string | undefined;
}

/** Messages from the main thread to the proxy thread (besides the bus bridge's answers). */
export type ToProxyThread =
  | { type: 'start'; role: ProxyThreadRole }
  | { type: 'stop'; role: ProxyThreadRole }
  | { type: 'metrics'; id: number }
  | { type: 'scraped'; id: number; text?: string; error?: string }
  | { type: 'close' };

/** Messages from the proxy thread to the main thread (besides the bus bridge's publishes). */
export type FromProxyThread =
  /** `tid`: the thread's operating-system id, where the platform gives it. */
  | { type: 'ready'; tid?: number }
  | { type: 'started'; role: ProxyThreadRole; name: string; urls: string[] }
  | { type: 'start-failed'; role: ProxyThreadRole; error: PostedError }
  | { type: 'stopped'; role: ProxyThreadRole; error?: PostedError }
  | { type: 'metrics'; id: number; metrics: MetricObjectWithValues<MetricValue<string>>[] }
  | { type: 'scrape'; id: number }
  | { type: 'closed' };
