import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { errorMessage } from '../common/errors.js';
import { parseListen } from '../config/parse.js';
import type { RunningRole, RuntimeContext } from './context.js';

/**
 * `metrics.listen`: a small HTTP listener serving `GET /metrics` (the process registry) and `GET /healthz`,
 * so roles without an HTTP server of their own (ingest, detect) can be scraped by Prometheus. Started
 * first and stopped last by `serveRoles`.
 */
export async function startMetricsListener(ctx: RuntimeContext, listen: string): Promise<RunningRole> {
  const { host, port } = parseListen({ key: 'metrics.listen', value: listen });
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/metrics') {
      ctx.metrics.metrics().then(
        (text) => res.writeHead(200, { 'content-type': ctx.metrics.contentType }).end(text),
        (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${errorMessage(err)}\n`),
      );
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    name: 'metrics',
    urls: [`http://${shown}:${addr.port}/metrics`],
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
