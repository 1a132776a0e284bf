import { createLogger } from '../../common/logger.js';
import { parseListen } from '../../config/index.js';
import { DEMO_FEATURES, DEMO_MODEL, DEMO_VERSION, demoModelBytes, startDemoModelServer } from '../../demo/index.js';
import { UsageError, parseFlags, type Command } from '../command.js';

const usage = `modelwatch demo-server [--listen HOST:PORT]
  --listen HOST:PORT  where the demo V2 model server listens (default: 127.0.0.1:8080)`;

/**
 * `modelwatch demo-server`: only the demo's V2 model server (the ONNX classifier of `modelwatch demo`,
 * served over V2 REST). The compose stack runs it as the model behind the sidecar; replace it with Triton,
 * MLServer or KServe in production. Stops on SIGINT/SIGTERM with exit 0.
 */
export const demoServerCommand: Command = {
  summary: "serve the demo's ONNX classifier over the V2 REST protocol (the compose stack's model server)",
  usage,
  async run(argv) {
    const { help, values } = parseFlags(argv, { listen: { type: 'string' } }, usage);
    if (help) {
      process.stdout.write(`${usage}\n`);
      return 0;
    }
    let listen: { host: string; port: number };
    try {
      listen = parseListen({ key: '--listen', value: values.listen ?? '127.0.0.1:8080' });
    } catch (err) {
      throw new UsageError(err instanceof Error ? err.message : String(err), usage);
    }
    const logger = createLogger(process.env.MODELWATCH_LOG_LEVEL === 'debug' ? 'debug' : 'info');
    const server = await startDemoModelServer({
      model: DEMO_MODEL,
      version: DEMO_VERSION,
      bytes: demoModelBytes(),
      features: DEMO_FEATURES.length,
      host: listen.host,
      port: listen.port,
      logger,
    });
    process.stdout.write(`demo model server: ${server.url}/v2/models/${DEMO_MODEL} (${server.executionProvider})\n`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await server.stop();
    return 0;
  },
};
