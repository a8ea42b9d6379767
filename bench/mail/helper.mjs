// Helpers for bench/mail/run.sh (plain Node ESM, no build step; `configure` and `drain` use the
// compiled dist/ and better-sqlite3 from the repo's node_modules).
//
//   node helper.mjs freeport                     a TCP port free on 127.0.0.1 a moment ago
//   node helper.mjs field JSON_LINE KEY          one field of a JSON log line (the relay's ports)
//   node helper.mjs configure DATA_DIR PORT      the relay's settings in its SQLite file, as the controller
//                                                writes them: account bench/bench-password-1 (example.com),
//                                                provider `sink` = 127.0.0.1:PORT in plain SMTP, a catch-all rule
//   node helper.mjs blast MODE PORT CONNS TOTAL [CA_FILE]
//                                                TOTAL messages over CONNS connections held open (a pooled
//                                                client: one session per connection, commands one at a time,
//                                                no PIPELINING, as nodemailer's pool does). MODE relay:
//                                                STARTTLS (certificate verified with CA_FILE) + AUTH PLAIN
//                                                first; MODE plain: EHLO only (smtp-sink). The clock runs from
//                                                the moment every connection is ready to the last 250.
//                                                Prints one JSON line.
//   node helper.mjs drain DATA_DIR TARGET START_EPOCH_MS TIMEOUT_S
//                                                polls the relay's queue until TARGET messages are delivered;
//                                                prints one JSON line (ms since START_EPOCH_MS, delivered when
//                                                it started, status counts)
//   node helper.mjs ref PORT TLS_DIR            reference server: bare smtp-server (the relay's library) with the
//                                                relay's certificate, STARTTLS required, any AUTH PLAIN accepted
//                                                at once, each message read and thrown away; prints "listening"
//   node helper.mjs profile DIR                 summary of the relay's V8 CPU profile(s) in DIR (PROFILE=1):
//                                                self time by module and the top functions, idle left out
//   node helper.mjs idle PORT N HOLD_S CA_FILE   N connections to the relay, each EHLO + STARTTLS + EHLO, then
//                                                idle; prints "holding N" when all are open, holds HOLD_S
//                                                seconds, checks every one with NOOP, QUITs; prints one JSON line
import { readFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const HOSTNAME = 'relay.example.net';
export const ACCOUNT = { name: 'bench', email: 'bench@example.com', password: 'bench-password-1', allowed_domains: ['example.com'] };

// ---- a minimal SMTP client session ------------------------------------------------------------

/** One SMTP session over a socket: reply() resolves with the next complete reply {code, text}. */
class Session {
  constructor(socket) {
    this.replies = [];
    this.waiting = [];
    this.closed = null;
    this.attach(socket);
  }

  attach(socket) {
    this.socket = socket;
    this.buf = '';
    socket.setNoDelay(true);
    this.onData = (d) => {
      this.buf += d.toString('latin1');
      // A reply ends with a line "NNN text" (no dash after the code).
      for (let m; (m = /^(?:\d{3}-[^\r\n]*\r\n)*(\d{3})(?: [^\r\n]*)?\r\n/.exec(this.buf)); ) {
        this.buf = this.buf.slice(m[0].length);
        const r = { code: Number(m[1]), text: m[0].trimEnd() };
        const w = this.waiting.shift();
        if (w) w.resolve(r);
        else this.replies.push(r);
      }
    };
    this.onEnd = (err) => {
      this.closed = err?.message ?? 'connection closed';
      for (const w of this.waiting.splice(0)) w.reject(new Error(this.closed));
    };
    socket.on('data', this.onData);
    socket.on('error', this.onEnd);
    socket.on('close', () => this.onEnd());
  }

  reply() {
    const r = this.replies.shift();
    if (r) return Promise.resolve(r);
    if (this.closed) return Promise.reject(new Error(this.closed));
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  /** Sends `line` and expects a reply with code `want`. */
  async cmd(line, want) {
    this.socket.write(`${line}\r\n`);
    const r = await this.reply();
    if (r.code !== want) throw new Error(`${line.split(' ')[0]}: expected ${want}, got ${r.text}`);
    return r;
  }

  /** STARTTLS answered 220: continue over TLS on the same socket. */
  async upgrade(ca) {
    const plain = this.socket;
    plain.off('data', this.onData);
    plain.removeAllListeners('error');
    plain.removeAllListeners('close');
    const secure = tlsConnect({ socket: plain, ca, servername: HOSTNAME });
    await new Promise((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    this.attach(secure);
  }

  close() {
    this.socket.destroy();
  }
}

async function open(port) {
  const socket = connect(port, '127.0.0.1');
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const s = new Session(socket);
  const greeting = await s.reply();
  if (greeting.code !== 220) throw new Error(`greeting: ${greeting.text}`);
  return s;
}

/** A session ready for MAIL FROM: EHLO (plain) or EHLO, STARTTLS, EHLO, AUTH PLAIN (relay). */
async function ready(mode, port, ca) {
  const s = await open(port);
  await s.cmd('EHLO client.example.com', 250);
  if (mode === 'relay') {
    await s.cmd('STARTTLS', 220);
    await s.upgrade(ca);
    await s.cmd('EHLO client.example.com', 250);
    await s.cmd(`AUTH PLAIN ${Buffer.from(`\0${ACCOUNT.name}\0${ACCOUNT.password}`).toString('base64')}`, 235);
  }
  return s;
}

/** A ~1.2 KiB text message: the usual headers and 16 lines of body (no line starts with a dot). */
function message(i) {
  const line = 'The quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs.\r\n';
  return Buffer.from(
    `From: Bench <app@example.com>\r\nTo: <rcpt${i % 100}@example.org>\r\nSubject: bench message ${i}\r\n` +
      `Date: ${new Date().toUTCString()}\r\nMessage-ID: <bench-${i}-${process.pid}@example.com>\r\n` +
      `MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${line.repeat(12)}\r\n.\r\n`,
  );
}

function percentile(sorted, p) {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Opens `n` sessions, `batch` at a time (a burst of thousands of SYNs would overflow the listen backlog). */
async function openAll(n, batch, make) {
  const out = [];
  for (let i = 0; i < n; i += batch) out.push(...(await Promise.all(Array.from({ length: Math.min(batch, n - i) }, make))));
  return out;
}

async function blast(mode, port, conns, total, caFile) {
  const ca = caFile ? readFileSync(caFile, 'utf8') : undefined;
  const setupStart = performance.now();
  const sessions = await openAll(conns, 50, () => ready(mode, port, ca));
  const setupMs = performance.now() - setupStart;
  const latencies = new Float64Array(total);
  let next = 0;
  let acked = 0;
  const errors = [];
  const cpu0 = process.cpuUsage();
  const startEpoch = Date.now();
  const t0 = performance.now();
  await Promise.all(
    sessions.map(async (s) => {
      while (next < total) {
        const i = next++;
        const m0 = performance.now();
        try {
          await s.cmd('MAIL FROM:<app@example.com>', 250);
          await s.cmd(`RCPT TO:<rcpt${i % 100}@example.org>`, 250);
          await s.cmd('DATA', 354);
          s.socket.write(message(i));
          const r = await s.reply();
          if (r.code !== 250) throw new Error(`end of data: ${r.text}`);
          latencies[acked++] = performance.now() - m0;
        } catch (e) {
          errors.push(e.message);
          if (s.closed) return;
          await s.cmd('RSET', 250).catch(() => undefined);
        }
      }
    }),
  );
  const ms = performance.now() - t0;
  const endEpoch = Date.now();
  const cpu = process.cpuUsage(cpu0);
  await Promise.all(sessions.map((s) => s.cmd('QUIT', 221).catch(() => undefined).finally(() => s.close())));
  const sorted = Array.from(latencies.subarray(0, acked)).sort((a, b) => a - b);
  console.log(
    JSON.stringify({
      mode,
      conns,
      total,
      acked,
      errors: errors.length,
      first_errors: [...new Set(errors)].slice(0, 3),
      setup_ms: Math.round(setupMs),
      ms: Math.round(ms),
      msgs_per_s: Math.round((acked / ms) * 1000),
      p50_ms: +percentile(sorted, 50).toFixed(2),
      p99_ms: +percentile(sorted, 99).toFixed(2),
      client_cpu_ms: Math.round((cpu.user + cpu.system) / 1000),
      start_epoch_ms: startEpoch,
      end_epoch_ms: endEpoch,
    }),
  );
}

async function idle(port, n, holdS, caFile) {
  const ca = readFileSync(caFile, 'utf8');
  const errors = [];
  const t0 = performance.now();
  const sessions = (
    await openAll(n, 50, async () => {
      try {
        const s = await open(port);
        await s.cmd('EHLO client.example.com', 250);
        await s.cmd('STARTTLS', 220);
        await s.upgrade(ca);
        await s.cmd('EHLO client.example.com', 250);
        return s;
      } catch (e) {
        errors.push(`open: ${e.message}`);
        return null;
      }
    })
  ).filter(Boolean);
  const openMs = performance.now() - t0;
  console.log(`holding ${sessions.length}`);
  await new Promise((r) => setTimeout(r, holdS * 1000));
  let alive = 0;
  await Promise.all(
    sessions.map(async (s) => {
      try {
        await s.cmd('NOOP', 250);
        alive++;
        await s.cmd('QUIT', 221).catch(() => undefined);
      } catch (e) {
        errors.push(`after ${holdS} s idle: ${e.message}`);
      } finally {
        s.close();
      }
    }),
  );
  console.log(JSON.stringify({ wanted: n, opened: sessions.length, alive_after_hold: alive, hold_s: holdS, open_ms: Math.round(openMs), errors: errors.length, first_errors: [...new Set(errors)].slice(0, 3) }));
}

async function ref(port, tlsDir) {
  const { SMTPServer } = await import(`${ROOT}node_modules/smtp-server/dist/esm/smtp-server.js`);
  const server = new SMTPServer({
    name: HOSTNAME,
    secure: false,
    key: readFileSync(`${tlsDir}/key.pem`),
    cert: readFileSync(`${tlsDir}/cert.pem`),
    authMethods: ['PLAIN'],
    allowInsecureAuth: false,
    disableReverseLookup: true,
    logger: false,
    maxClients: 5000,
    onAuth: (auth, session, cb) => cb(null, { user: auth.username }),
    onData: (stream, session, cb) => {
      stream.on('data', () => undefined);
      stream.on('end', () => cb(null, 'Ok: discarded'));
    },
  });
  server.on('error', () => undefined);
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  console.log('listening');
  process.once('SIGTERM', () => server.close(() => process.exit(0)));
}

async function configure(dataDir, port) {
  const { openDb } = await import(`${ROOT}dist/store/db.js`);
  const { MailStore } = await import(`${ROOT}dist/mail/store.js`);
  const db = openDb(dataDir);
  const store = new MailStore(db);
  await store.addAccount(ACCOUNT);
  store.putProvider({ name: 'sink', config: { type: 'smtp', host: '127.0.0.1', port, security: 'none', tls_verify: false, allow_private: true } });
  store.addRule({ priority: 1, sender_domain: null, recipient_domain: null, account: null, provider: 'sink', fallback_provider: null });
  db.close();
}

async function drain(dataDir, target, startEpoch, timeoutS) {
  const { default: Database } = await import(`${ROOT}node_modules/better-sqlite3/lib/index.js`);
  const db = new Database(`${dataDir}/dnsproxy.sqlite`, { readonly: true });
  db.pragma('busy_timeout = 5000');
  const delivered = db.prepare(`SELECT count(*) AS n FROM mail_messages WHERE status = 'delivered'`).pluck();
  const deadline = Date.now() + timeoutS * 1000;
  let n = delivered.get();
  const atStart = n;
  while (n < target && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    n = delivered.get();
  }
  const at = Date.now();
  const counts = Object.fromEntries(db.prepare('SELECT status, count(*) AS n FROM mail_messages GROUP BY status').all().map((r) => [r.status, r.n]));
  db.close();
  console.log(JSON.stringify({ target, delivered: n, delivered_at_start: atStart, ms: at - startEpoch, timed_out: n < target, counts }));
}

/** Which part of the relay a profiled function belongs to, from its script URL. */
function area(url, name) {
  if (!url) return name.startsWith('(') ? name : `native: ${name || '(anonymous)'}`;
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1];
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  const d = /\/dist\/(.+)\.js$/.exec(url);
  return d ? `dnsproxy ${d[1]}` : url;
}

async function profile(dir) {
  const { readdirSync } = await import('node:fs');
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  if (!files.length) throw new Error(`no .cpuprofile in ${dir}`);
  const byArea = new Map();
  const byFn = new Map();
  let total = 0;
  for (const f of files) {
    const p = JSON.parse(readFileSync(`${dir}/${f}`, 'utf8'));
    const nodes = new Map(p.nodes.map((n) => [n.id, n]));
    // Self time per node: the sample intervals attributed to it.
    for (let i = 0; i < p.samples.length; i++) {
      const n = nodes.get(p.samples[i]);
      const us = p.timeDeltas[i + 1] ?? 0;
      const { functionName: name, url, lineNumber } = n.callFrame;
      if (name === '(idle)') continue;
      total += us;
      const a = area(url, name);
      byArea.set(a, (byArea.get(a) ?? 0) + us);
      const key = `${name || '(anonymous)'} ${url ? `${url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${lineNumber + 1}` : ''}`;
      byFn.set(key, (byFn.get(key) ?? 0) + us);
    }
  }
  const pct = (us) => ((100 * us) / total).toFixed(1).padStart(5);
  console.log(`busy (non-idle) CPU in the profile: ${(total / 1e6).toFixed(2)} s`);
  console.log('by module (self time):');
  for (const [k, v] of [...byArea].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`  ${pct(v)} %  ${k}`);
  console.log('top functions (self time):');
  for (const [k, v] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, 20)) console.log(`  ${pct(v)} %  ${k}`);
}

async function freeport() {
  const srv = createServer();
  await new Promise((resolve, reject) => srv.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  console.log(port);
}

const [cmd, ...args] = process.argv.slice(2);
switch (cmd) {
  case 'freeport':
    await freeport();
    break;
  case 'field':
    console.log(JSON.parse(args[0])[args[1]]);
    break;
  case 'configure':
    await configure(args[0], Number(args[1]));
    break;
  case 'blast':
    await blast(args[0], Number(args[1]), Number(args[2]), Number(args[3]), args[4]);
    break;
  case 'drain':
    await drain(args[0], Number(args[1]), Number(args[2]), Number(args[3]));
    break;
  case 'ref':
    await ref(Number(args[0]), args[1]);
    break;
  case 'profile':
    await profile(args[0]);
    break;
  case 'idle':
    await idle(Number(args[0]), Number(args[1]), Number(args[2]), args[3]);
    break;
  default:
    console.error(`usage: see the comment at the top of ${fileURLToPath(import.meta.url)}`);
    process.exit(2);
}
