// `dnsproxy stats [host] [--watch]`: per-host traffic from GET /api/v1/stats (one host: /stats/{host}).
import type { Command } from 'commander';
import { call, CliError } from './client.js';
import type { Globals } from './commands.js';
import { printJson, table } from './output.js';

/** The shortest refresh: the minute window moves in 5 s slots, so faster says nothing new. */
const MIN_INTERVAL_S = 1;
const DEFAULT_INTERVAL_S = 2;

interface Window {
  requests: number;
  status: Record<'1xx' | '2xx' | '3xx' | '4xx' | '5xx', number>;
  bytes: number;
  latency_ms: { p50: number | null; p95: number | null; p99: number | null };
}
interface HostView {
  host: string;
  minute: Window;
  hour: Window;
  last_seen: string | null;
  routes: { id: string; status: string; error: string | null }[];
}

const ms = (v: number | null) => (v === null ? '-' : v < 10 ? v.toFixed(2) : v.toFixed(0));
const classes = (w: Window) => `${w.status['2xx']}/${w.status['3xx']}/${w.status['4xx']}/${w.status['5xx']}`;
const routes = (h: HostView) => (h.routes.length ? h.routes.map((r) => `${r.id} ${r.status}${r.error ? ` (${r.error})` : ''}`).join(', ') : 'dynamic or none');

/** The table `dnsproxy stats` prints: one row per host, the minute window, then the hour's totals. */
export function statsTable(hosts: HostView[]): string {
  if (hosts.length === 0) return 'no requests in the last hour';
  return table(
    ['HOST', 'REQ/1M', '2XX/3XX/4XX/5XX', 'BYTES/1M', 'P50/P95/P99 MS', 'REQ/1H', '5XX/1H', 'ROUTES'],
    hosts.map((h) => [h.host, String(h.minute.requests), classes(h.minute), String(h.minute.bytes), `${ms(h.minute.latency_ms.p50)}/${ms(h.minute.latency_ms.p95)}/${ms(h.minute.latency_ms.p99)}`, String(h.hour.requests), String(h.hour.status['5xx']), routes(h)]),
  );
}

export function statsCommand(program: Command, g: Globals): void {
  program
    .command('stats')
    .description("per-host requests, status classes, bytes and latency over the last minute and hour (from Caddy's access log)")
    .argument('[host]', 'one host only')
    .option('--watch', 'print again every --interval seconds until interrupted')
    .option('--interval <seconds>', `refresh interval for --watch (≥ ${MIN_INTERVAL_S})`, (v) => Number(v), DEFAULT_INTERVAL_S)
    .option('--count <n>', 'with --watch: stop after n prints', (v) => Number(v))
    .action(async (host: string | undefined, o: { watch?: boolean; interval: number; count?: number }) => {
      if (!Number.isFinite(o.interval) || o.interval < MIN_INTERVAL_S) throw new CliError(`--interval must be a number ≥ ${MIN_INTERVAL_S}`, 2);
      if (o.count !== undefined && !(Number.isInteger(o.count) && o.count > 0)) throw new CliError('--count must be a positive integer', 2);
      const once = async () => {
        const path = host ? `/api/v1/stats/${encodeURIComponent(host)}` : '/api/v1/stats';
        const body = (await call(g.target(), 'GET', path)) as { hosts?: HostView[]; stats?: HostView };
        const hosts = body.hosts ?? (body.stats ? [body.stats] : []);
        if (g.json()) printJson(body);
        else process.stdout.write(`${o.watch ? `${new Date().toISOString()}\n` : ''}${statsTable(hosts)}\n${o.watch ? '\n' : ''}`);
      };
      await once();
      if (!o.watch) return;
      for (let n = 1; o.count === undefined || n < o.count; n++) {
        await new Promise((resolve) => setTimeout(resolve, o.interval * 1000));
        await once();
      }
    });
}
