/** Pick the engine for ENGINE; only the chosen one is loaded. */
import type { Config } from '../config.js';
import type { Engine } from './types.js';

export async function loadEngine(engine: Config['engine']): Promise<Engine> {
  const onBun = Boolean(process.versions.bun);
  if (engine === 'bun') {
    if (!onBun) throw new Error('ENGINE=bun must run under Bun: start it with bin/onebox (or npm start)');
    return (await import('./bun.js')).startBun;
  }
  if (onBun) throw new Error('ENGINE=node must run under Node: start it with bin/onebox (or npm start)');
  return (await import('./node.js')).startNode;
}

export type { EngineOptions, RunningServer, ServeTarget } from './types.js';
