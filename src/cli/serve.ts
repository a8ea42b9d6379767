// `dnsproxy serve`: runs the controller until SIGTERM/SIGINT. Each flag is also DNSPROXY_<NAME>.
import type { Command } from 'commander';
import { adminDefaultProblem, ConfigError, loadConfig } from '../config/load.js';
import { logger, setLogLevel } from '../log/index.js';
import { adminTokenProblem } from '../model/token.js';
import { trustedRootProblem } from '../proxy/acme.js';
import { CliError } from './client.js';
import { lockDataDirOrFail, runUntilSignal, SERVICE_UMASK, startFailed } from './signals.js';

const collect = (v: string, prev: string[] = []) => [...prev, v];

interface ServeFlags {
  config?: string;
  dataDir?: string;
  zone?: string[];
  dnsPort?: string;
  apiPort?: string;
  listenIp?: string;
  httpPort?: string;
  httpsPort?: string;
  caddyAdmin?: string;
  acmeCa?: string;
  acmeCaRoot?: string;
  acmeEmail?: string;
  nodeIp?: string;
  upstream?: string[];
  logLevel?: string;
  tailnetOnly?: string;
  tailnetRange?: string[];
  tailscaleSocket?: string;
  tailscaleCli?: string;
  devicePollMs?: string;
  watch?: string;
  watchPrune?: boolean;
  stats?: string;
}

export function serveCommand(program: Command): void {
  program
    .command('serve')
    .description('run the controller (HTTP API + authoritative DNS) in the foreground')
    .option('--config <file>', 'JSON or YAML config file (env DNSPROXY_CONFIG)')
    .option('--data-dir <dir>', 'data directory (env DNSPROXY_DATA_DIR, default ./data)')
    .option('--zone <zone>', 'zone to serve, repeatable (env DNSPROXY_ZONE, comma-separated; default home.arpa)', collect)
    .option('--dns-port <port>', 'DNS port, UDP and TCP (env DNSPROXY_DNS_PORT, default 53)')
    .option('--api-port <port>', 'HTTP API port (env DNSPROXY_API_PORT, default 8080)')
    .option('--listen-ip <ip>', 'address DNS, the API and Caddy\'s HTTP/HTTPS listen on, or "tailnet" for this node\'s Tailscale address (env DNSPROXY_LISTEN_IP, default 127.0.0.1)')
    .option('--tailnet-only <mode>', 'auto|on|off: Caddy answers 403 to clients outside --tailnet-range (env DNSPROXY_TAILNET_ONLY, default auto: on when this node has a Tailscale address)')
    .option('--tailnet-range <cidr>', 'client network Caddy serves with --tailnet-only, repeatable (env DNSPROXY_TAILNET_RANGES; default the tailnet and loopback)', collect)
    .option('--tailscale-socket <path>', 'tailscaled\'s LocalAPI socket for the device list (env DNSPROXY_TAILSCALE_SOCKET, default /var/run/tailscale/tailscaled.sock)')
    .option('--tailscale-cli <program>', 'read the device list with "<program> status --json" instead (env DNSPROXY_TAILSCALE_CLI)')
    .option('--device-poll-ms <ms>', 'how often the device list is read (env DNSPROXY_DEVICE_POLL_MS, default 10000)')
    .option('--http-port <port>', 'Caddy HTTP port (env DNSPROXY_HTTP_PORT, default 80)')
    .option('--https-port <port>', 'Caddy HTTPS port (env DNSPROXY_HTTPS_PORT, default 443)')
    .option('--acme-ca <url>', 'ACME directory URL for tls acme names (env DNSPROXY_ACME_CA, default Let\'s Encrypt)')
    .option('--acme-ca-root <file>', 'PEM file of the root(s) Caddy trusts when talking to --acme-ca (env DNSPROXY_ACME_CA_ROOT)')
    .option('--acme-email <address>', 'contact address of the ACME account (env DNSPROXY_ACME_EMAIL)')
    .option('--caddy-admin <address>', 'Caddy admin API: unix/<path> or loopback host:port (env DNSPROXY_CADDY_ADMIN, default unix/<data-dir>/run/caddy-admin.sock)')
    .option('--node-ip <ip>', 'this node\'s IPv4 (env DNSPROXY_NODE_IP, default: detected)')
    .option('--upstream <ip[:port]>', 'resolver for names outside our zones, repeatable (env DNSPROXY_UPSTREAMS)', collect)
    .option('--log-level <level>', 'error|warn|info|debug (env DNSPROXY_LOG_LEVEL)')
    .option('--watch <file>', 'apply this state file (dnsproxy export) now and on every save (env DNSPROXY_STATE_FILE)')
    .option('--stats <mode>', 'on|off: per-host stats from Caddy\'s access log, GET /api/v1/stats (env DNSPROXY_STATS, default off)')
    .option('--watch-prune', 'with --watch: also remove what the file lacks (env DNSPROXY_STATE_PRUNE)')
    .action(async (f: ServeFlags) => {
      process.umask(SERVICE_UMASK);
      let config;
      const sources = {
        file: f.config,
        flags: {
          data_dir: f.dataDir,
          zones: f.zone,
          dns_port: f.dnsPort,
          api_port: f.apiPort,
          listen_ip: f.listenIp,
          http_port: f.httpPort,
          https_port: f.httpsPort,
          caddy_admin: f.caddyAdmin,
          acme_ca: f.acmeCa,
          acme_ca_root: f.acmeCaRoot,
          acme_email: f.acmeEmail,
          node_ip: f.nodeIp,
          upstreams: f.upstream,
          log_level: f.logLevel,
          state_file: f.watch,
          state_prune: f.watchPrune,
          stats: f.stats,
          tailnet_only: f.tailnetOnly,
          tailnet_ranges: f.tailnetRange,
          tailscale_socket: f.tailscaleSocket,
          tailscale_cli: f.tailscaleCli,
          device_poll_ms: f.devicePollMs,
        },
      };
      try {
        config = loadConfig(sources);
      } catch (e) {
        if (e instanceof ConfigError) throw new CliError(e.lines.join('\n'), 2);
        throw e;
      }
      const adminToken = process.env.DNSPROXY_ADMIN_TOKEN || undefined;
      const weak = adminToken === undefined ? null : adminTokenProblem(adminToken);
      if (weak) throw new CliError(`config: DNSPROXY_ADMIN_TOKEN ${weak} (from env DNSPROXY_ADMIN_TOKEN)`, 2);
      const adminProblem = adminDefaultProblem(config);
      if (adminProblem) throw new CliError(adminProblem, 2);
      const rootProblem = config.acme_ca_root === undefined ? null : trustedRootProblem(config.acme_ca_root);
      if (rootProblem) throw new CliError(`config: acme_ca_root: ${rootProblem}`, 2);
      setLogLevel(config.log_level);
      const log = logger('serve');
      const unlock = await lockDataDirOrFail(config.data_dir, 'controller');
      await runUntilSignal(async () => {
        const { Controller } = await import('../controller.js'); // client commands never load the server side
        const controller = new Controller(config);
        await controller.start().catch((e: unknown) => {
          throw startFailed(e, '--dns-port/--api-port', 'DNSPROXY_DNS_PORT/DNSPROXY_API_PORT');
        });
        // The config file is watched: the log level changes at once, other settings say they need a restart.
        const configFile = f.config ?? process.env.DNSPROXY_CONFIG;
        if (configFile) await controller.watchConfig(configFile, () => loadConfig(sources));
        if (config.state_file) await controller.watchState(config.state_file, config.state_prune);
        return (signal) => {
          log.info('stopping', { signal });
          return controller.stop().finally(unlock);
        };
      });
    });
}
