// Helpers for bench/dns/run.sh (plain Node ESM, no build step, no dependencies).
//
//   node helper.mjs zone N OUT             write a zone file for home.arpa. with N owner names
//   node helper.mjs queries ZONEFILE OUT   dnsperf query file from an exported zone (~10% NXDOMAIN)
//   node helper.mjs latency VERBOSE_OUT    p50/p99/max (ms) from `dnsperf -v` output, as "p50 p99 max n timeouts"
//   node helper.mjs freeport               a port free for both UDP and TCP on 127.0.0.1
//   node helper.mjs field JSON_LINE KEY    one field of a JSON log line (used to read the controller's ports)
//   node helper.mjs echo PORT              reference server: bare node:dgram, answers each query with itself
//                                          flagged QR+AA (no parsing, no lookup): Node's plain UDP path as a reference
//
// Everything is deterministic (fixed-seed PRNG) so runs compare like with like.
import { createSocket } from 'node:dgram';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { prng } from '../lib/prng.mjs';

// RFC 5737 documentation IPv4 ranges and the RFC 3849 IPv6 documentation prefix.
const V4_NETS = ['192.0.2', '198.51.100', '203.0.113'];
const v4 = (i) => `${V4_NETS[i % 3]}.${1 + (Math.floor(i / 3) % 254)}`;
const v6 = (i) => `2001:db8:${(i >>> 16).toString(16)}:${(i & 0xffff).toString(16)}::${(1 + (i % 4093)).toString(16)}`;

const LABELS = ['web', 'api', 'db', 'nas', 'cam', 'printer', 'git', 'ci', 'vault', 'media', 'mqtt', 'grafana', 'build', 'cache', 'proxy', 'k8s'];
const SUBZONES = ['lab', 'office', 'iot', 'dev'];

/**
 * N owner names, one record set each (mix by index: 70% A, 10% AAAA, 8% CNAME, 7% TXT, 5% MX),
 * plus AAAA beside every 10th A name (dual-stack hosts). About a quarter of the names sit one
 * label deeper (x.lab.home.arpa.) so the zone has empty non-terminals too.
 */
function zone(n, out) {
  const rnd = prng(5300);
  const lines = ['$ORIGIN home.arpa.', '$TTL 300'];
  const aNames = [];
  const owners = [];
  for (let i = 0; i < n; i++) {
    const base = `${LABELS[i % LABELS.length]}-${i}`;
    owners.push(i % 4 === 3 ? `${base}.${SUBZONES[i % SUBZONES.length]}` : base);
  }
  const kindOf = (i) => {
    const m = i % 100;
    return m < 70 ? 'A' : m < 80 ? 'AAAA' : m < 88 ? 'CNAME' : m < 95 ? 'TXT' : 'MX';
  };
  for (let i = 0; i < n; i++) if (kindOf(i) === 'A') aNames.push(owners[i]);
  for (let i = 0; i < n; i++) {
    const name = owners[i];
    const target = () => aNames[Math.floor(rnd() * aNames.length)];
    switch (kindOf(i)) {
      case 'A':
        lines.push(`${name} 300 IN A ${v4(i)}`);
        if (i % 10 === 0) lines.push(`${name} 300 IN AAAA ${v6(i)}`);
        break;
      case 'AAAA':
        lines.push(`${name} 300 IN AAAA ${v6(i)}`);
        break;
      case 'CNAME':
        lines.push(`${name} 300 IN CNAME ${target()}`);
        break;
      case 'TXT':
        lines.push(`${name} 300 IN TXT "v=bench1; id=${i}" "owner=team-${i % 17}"`);
        break;
      case 'MX':
        lines.push(`${name} 300 IN MX 10 ${target()}`);
        lines.push(`${name} 300 IN MX 20 ${target()}`);
        break;
    }
  }
  writeFileSync(out, lines.join('\n') + '\n');
}

/**
 * Query lines "name TYPE" for every (owner, type) the exported zone serves except SOA/NS, each
 * repeated so the file is ~100k lines, shuffled, plus ~10% names that do not exist (NXDOMAIN).
 * Reads the export (absolute owner names, one record per line, as our exporter writes them); a
 * line whose owner is blank or relative would be mis-read, so those fail loudly instead.
 */
function queries(zonefile, out) {
  const rnd = prng(1035);
  let origin = null;
  const seen = new Set();
  for (const raw of readFileSync(zonefile, 'utf8').split('\n')) {
    const line = raw.replace(/;.*$/, '').trimEnd();
    if (!line.trim()) continue;
    if (line.startsWith('$ORIGIN')) {
      origin = line.split(/\s+/)[1];
      continue;
    }
    if (line.startsWith('$')) continue;
    if (/^\s/.test(line) || line.includes('(')) {
      // continuation / multi-line record (the SOA); only the SOA is written that way
      continue;
    }
    const f = line.split(/\s+/);
    const type = f.find((x, k) => k > 0 && /^(A|AAAA|CNAME|TXT|MX|SRV|PTR|CAA|NS|SOA)$/.test(x));
    if (!type || type === 'SOA' || type === 'NS') continue;
    let owner = f[0];
    if (owner === '@') owner = origin;
    else if (!owner.endsWith('.')) {
      if (!origin) throw new Error(`relative owner without $ORIGIN: ${raw}`);
      owner = `${owner}.${origin}`;
    }
    seen.add(`${owner} ${type}`);
  }
  const hits = [...seen];
  if (hits.length < 1000) throw new Error(`only ${hits.length} record sets found in ${zonefile}`);
  const total = 100_000;
  const missCount = Math.round(total * 0.1);
  const lines = [];
  for (let k = 0; lines.length < total - missCount; k++) lines.push(hits[k % hits.length]);
  const missTypes = ['A', 'A', 'A', 'AAAA', 'TXT', 'MX'];
  for (let k = 0; k < missCount; k++) {
    const sub = k % 3 === 0 ? `.${SUBZONES[k % SUBZONES.length]}` : '';
    lines.push(`nx-${Math.floor(rnd() * 1e9).toString(36)}${sub}.home.arpa. ${missTypes[k % missTypes.length]}`);
  }
  for (let i = lines.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [lines[i], lines[j]] = [lines[j], lines[i]];
  }
  writeFileSync(out, lines.join('\n') + '\n');
  process.stdout.write(`${hits.length} record sets, ${lines.length} queries (${missCount} misses)\n`);
}

/** Latency percentiles from `dnsperf -v` lines "> RCODE name type S.UUUUUU"; "> T"/"> I" lines count as lost. */
function latency(file) {
  const lat = [];
  let lost = 0;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.startsWith('> ')) continue;
    const f = line.split(' ');
    const last = f[f.length - 1];
    if (f[1] === 'T' || f[1] === 'I') {
      lost++;
      continue;
    }
    if (/^\d+\.\d+$/.test(last)) lat.push(Number(last) * 1000);
  }
  if (!lat.length) throw new Error(`no latency lines in ${file} (dnsperf -v output expected)`);
  const sorted = Float64Array.from(lat).sort();
  const pct = (p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
  const fmt = (x) => x.toFixed(3);
  process.stdout.write(`${fmt(pct(50))} ${fmt(pct(99))} ${fmt(sorted[sorted.length - 1])} ${sorted.length} ${lost}\n`);
}

async function freeport() {
  for (let attempt = 0; attempt < 20; attempt++) {
    const tcp = createServer();
    const port = await new Promise((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => resolve(tcp.address().port));
    });
    const udp = createSocket('udp4');
    const ok = await new Promise((resolve) => {
      udp.once('error', () => resolve(false));
      udp.bind(port, '127.0.0.1', () => resolve(true));
    });
    await new Promise((r) => tcp.close(r));
    if (ok) {
      await new Promise((r) => udp.close(r));
      process.stdout.write(`${port}\n`);
      return;
    }
    udp.close();
  }
  throw new Error('no free port found');
}

/** The cheapest possible Node UDP "DNS server": same socket options as ours (4 MiB receive buffer), zero work per query. */
function echo(port) {
  const socket = createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024 });
  socket.on('message', (msg, rinfo) => {
    if (msg.length < 12 || (msg[2] & 0x80) !== 0) return;
    const out = Buffer.allocUnsafe(msg.length);
    msg.copy(out);
    out[2] |= 0x84; // QR, AA
    socket.send(out, rinfo.port, rinfo.address);
  });
  socket.bind(port, '127.0.0.1', () => process.stdout.write(`echo listening on 127.0.0.1:${port}\n`));
  process.on('SIGTERM', () => socket.close(() => process.exit(0)));
}

function field(line, key) {
  const v = JSON.parse(line)[key];
  if (v === undefined) throw new Error(`no "${key}" in ${line}`);
  process.stdout.write(`${v}\n`);
}

const [cmd, ...args] = process.argv.slice(2);
try {
  if (cmd === 'zone') zone(Number(args[0]), args[1]);
  else if (cmd === 'queries') queries(args[0], args[1]);
  else if (cmd === 'latency') latency(args[0]);
  else if (cmd === 'freeport') await freeport();
  else if (cmd === 'field') field(args[0], args[1]);
  else if (cmd === 'echo') echo(Number(args[0]));
  else throw new Error(`usage: helper.mjs zone|queries|latency|freeport|field|echo …`);
} catch (err) {
  process.stderr.write(`helper.mjs ${cmd}: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
