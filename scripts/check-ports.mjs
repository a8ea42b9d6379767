// scripts/run.sh, before it starts supervisord: can every program bind its ports? A port taken
// by another process would leave a half-running stack (the controller FATAL, Caddy and the relay
// up), so each conflict is named with the DNSPROXY_* variable that moves it, and nothing starts.
// Plain Node (no build, no dependencies): it runs before `npm run build`. Reads the DNSPROXY_*
// variables run.sh exported; exit 0 when all are free, 1 with one line per problem on stderr.
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { networkInterfaces } from 'node:os';

const env = process.env;
/** `tailnet` (src/config/load.ts): this node's Tailscale IPv4, 100.64.0.0/10; none: the controller refuses to start and says why. */
function tailnetIp() {
  const v4 = Object.values(networkInterfaces()).flat().filter((i) => i && i.family === 'IPv4' && !i.internal);
  return v4.map((i) => i.address).find((a) => {
    const [x, y] = a.split('.').map(Number);
    return x === 100 && y >= 64 && y < 128;
  });
}
const listenSetting = env.DNSPROXY_LISTEN_IP || '127.0.0.1';
const listen = listenSetting === 'tailnet' ? (tailnetIp() ?? '127.0.0.1') : listenSetting;

/** [variable, what listens there, protocols, address it binds]. Caddy's HTTP/HTTPS listen on every interface. */
const SPECS = [
  ['DNSPROXY_API_PORT', 'the controller\'s API', ['tcp'], listen],
  ['DNSPROXY_DNS_PORT', 'the DNS server', ['tcp', 'udp'], listen],
  ['DNSPROXY_HTTP_PORT', 'Caddy HTTP', ['tcp'], ''],
  ['DNSPROXY_HTTPS_PORT', 'Caddy HTTPS', ['tcp'], ''],
  ['DNSPROXY_SMTP_PORT', 'mail relay SMTP', ['tcp'], listen],
  ['DNSPROXY_SUBMISSION_PORT', 'mail relay submission', ['tcp'], listen],
  ['DNSPROXY_SMTPS_PORT', 'mail relay implicit TLS', ['tcp'], listen],
];

/** Binds and closes at once; resolves with the error code (EADDRINUSE, EACCES, …) or null. */
function tryBind(proto, port, host) {
  return new Promise((resolve) => {
    if (proto === 'udp') {
      const s = createSocket(host.includes(':') ? 'udp6' : 'udp4');
      s.once('error', (e) => {
        s.close();
        resolve(e.code ?? e.message);
      });
      s.bind(port, host || undefined, () => s.close(() => resolve(null)));
      return;
    }
    const s = createServer();
    s.once('error', (e) => resolve(e.code ?? e.message));
    s.listen({ port, ...(host ? { host } : {}), exclusive: true }, () => s.close(() => resolve(null)));
  });
}

const problems = [];
const seen = new Map(); // "proto port" -> variable, for two settings on one port
const checks = SPECS.map(([name, what, protos, host]) => ({ name, what, protos, host, value: env[name] }));
// The Caddy admin API, when it is a TCP address (host:port); a unix socket has no port to check.
const admin = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(env.DNSPROXY_CADDY_ADMIN ?? '');
if (admin) checks.push({ name: 'DNSPROXY_CADDY_ADMIN', what: 'Caddy\'s admin API', protos: ['tcp'], host: admin[1] ?? admin[2], value: admin[3] });

for (const c of checks) {
  if (c.value === undefined || c.value === '' || c.value === '0') continue;
  const port = Number(c.value);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    problems.push(`${c.name}=${c.value} is not a port (1-65535)`);
    continue;
  }
  for (const proto of c.protos) {
    const key = `${proto} ${port}`;
    const other = seen.get(key);
    if (other) {
      problems.push(`${other} and ${c.name} are both ${port}: give one of them another port`);
      continue;
    }
    seen.set(key, c.name);
    const code = await tryBind(proto, port, c.host);
    if (code === 'EADDRINUSE') problems.push(`port ${port}/${proto} (${c.what}) is already in use: stop what holds it, or choose another port with ${c.name}=…`);
    else if (code === 'EACCES') problems.push(`port ${port}/${proto} (${c.what}) needs root or CAP_NET_BIND_SERVICE: choose a port above 1023 with ${c.name}=…`);
    else if (code) problems.push(`cannot bind ${c.host || '*'}:${port}/${proto} (${c.what}): ${code} (${c.name}${c.host === listen ? ', DNSPROXY_LISTEN_IP' : ''})`);
  }
}
for (const p of problems) process.stderr.write(`dnsproxy: ${p}\n`);
if (problems.length) process.stderr.write('dnsproxy: nothing was started; set the variables before scripts/run.sh, e.g. DNSPROXY_API_PORT=18080 bash scripts/run.sh\n');
process.exit(problems.length ? 1 : 0);
