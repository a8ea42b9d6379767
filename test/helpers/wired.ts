// The controller's wiring (`wire()`, no API server, no DNS listener) pushing to a real Caddy:
// a temp data dir, its database, the settings pointing at `caddy`, the pipeline and the reconciler
// started. Shared by the suites that drive one wired part on injected timers (least_latency,
// recovery, tailnet devices) and watch what Caddy runs.
import { loadConfig } from '../../src/config/load.js';
import { wire, type WireDeps, type Wired } from '../../src/controller.js';
import { setLogLevel } from '../../src/log/index.js';
import { CaddyAdmin } from '../../src/proxy/caddy.js';
import { openDb } from '../../src/store/db.js';
import type { RunningCaddy } from './caddy.js';
import { tempDir } from './tmp.js';

export interface WiredCaddy {
  w: Wired;
  /** Stops the reconciler (after the caller stopped the parts it started), closes the database, removes the dir. */
  close(): Promise<void>;
}

/** `wire()` at `caddy` with `env` besides the base settings and `deps` besides db and the admin client. */
export function wireToCaddy(caddy: RunningCaddy, deps: Omit<WireDeps, 'db' | 'caddy'> = {}, env: Record<string, string> = {}): WiredCaddy {
  setLogLevel('warn');
  const tmp = tempDir();
  const db = openDb(tmp.dir);
  const config = loadConfig({
    env: { DNSPROXY_DATA_DIR: tmp.dir, DNSPROXY_NODE_IP: '192.0.2.10', DNSPROXY_CADDY_ADMIN: caddy.adminListen, DNSPROXY_HTTP_PORT: String(caddy.httpPort), DNSPROXY_HTTPS_PORT: String(caddy.httpsPort), ...env },
    interfaces: {},
  });
  const w = wire(config, { db, caddy: new CaddyAdmin(caddy.adminListen), ...deps });
  w.pipeline.start();
  w.reconciler!.start();
  return {
    w,
    close: async () => {
      await w.reconciler?.stop();
      await w.pipeline.settled();
      w.uncount();
      db.close();
      tmp.cleanup();
    },
  };
}
