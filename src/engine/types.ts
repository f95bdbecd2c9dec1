/** The seam between the runtime-neutral app/gateway and a runtime's server. */
import type { Bindings } from '../app/context.js';
import type { Config } from '../config.js';
import type { Logger } from '../observability/logger.js';
import type { Gateway } from '../realtime/gateway.js';

/** Path of the WebSocket endpoint. */
export const WS_PATH = '/v1/ws';

export interface ServeTarget {
  fetch(req: Request, env: Bindings): Response | Promise<Response>;
  gateway: Gateway;
}

export interface RunningServer {
  /** The bound port (useful with PORT=0). */
  port: number;
  /**
   * Stop listening; in-flight requests continue and their connections close once answered.
   * Resolves when no HTTP connection is left.
   */
  stopAccepting(): Promise<void>;
  /** Close whatever connections remain. */
  close(): Promise<void>;
}

/** The settings an engine reads. */
export type EngineOptions = Pick<Config, 'port' | 'host' | 'workers' | 'maxMessageBytes' | 'maxBufferedBytes'>;

export type Engine = (config: EngineOptions, target: ServeTarget, log: Logger) => Promise<RunningServer>;
