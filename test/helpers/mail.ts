// The real mail relay process for crash tests: `bin/dnsproxy mail serve` (compiled dist/) run
// directly, as supervisord runs it, on loopback ports chosen free beforehand, so a restart binds
// the same ports and clients keep their address. Its settings are written to the data dir's
// SQLite file first, the way the controller writes them. Also: reading what a sink received by
// Message-ID, and a nodemailer client that submits over STARTTLS + AUTH.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { MailStore } from '../../src/mail/store.js';
import { openDb } from '../../src/store/db.js';
import { ACCOUNT, HOSTNAME, type Received } from '../mail/helpers.js';
import { BIN } from './controller.js';

/** Node start, SQLite open and (first start) the certificate take well under a second; a loaded box may need more. */
const START_TIMEOUT_MS = 20_000;
/** Output kept per process, so a failing test can show what the relay said. */
const MAX_OUTPUT_CHARS = 64_000;

export interface MailProcess {
  pid: number;
  smtpPort: number;
  submissionPort: number;
  output(): string;
  /** Resolves with the exit code (null: killed by a signal). */
  exited: Promise<number | null>;
  /** SIGTERM (the relay drains: sessions and deliveries get up to 10 s) and wait for the exit. */
  stop(): Promise<number | null>;
  /** SIGKILL, as a crash would, and wait until the process is gone. */
  kill(): Promise<void>;
}

export interface MailServeOptions {
  dataDir: string;
  smtpPort: number;
  submissionPort: number;
  /** Extra DNSPROXY_* settings (e.g. DNSPROXY_MAIL_WORKERS). */
  env?: Record<string, string>;
}

/** Starts `bin/dnsproxy mail serve` and resolves once it logged "mail relay started". The caller must stop() or kill() it. */
export async function startMailServe(o: MailServeOptions): Promise<MailProcess> {
  // Nothing of the caller's DNSPROXY_* (a config file, a log level) may leak into the run.
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DNSPROXY_')));
  const args = ['mail', 'serve', '--data-dir', o.dataDir, '--smtp-port', String(o.smtpPort), '--submission-port', String(o.submissionPort), '--listen-ip', '127.0.0.1'];
  const proc: ChildProcess = spawn(BIN, args, {
    env: { ...inherited, DNSPROXY_MAIL_HOSTNAME: HOSTNAME, DNSPROXY_LOG_LEVEL: 'info', ...o.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const keep = (c: Buffer) => (out = (out + c.toString()).slice(-MAX_OUTPUT_CHARS));
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const gone = () => proc.exitCode !== null || proc.signalCode !== null;
  const started = await new Promise<{ smtp: string; submission: string }>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`the relay did not start within ${START_TIMEOUT_MS} ms:\n${out}`));
    }, START_TIMEOUT_MS);
    let partial = '';
    const onData = (c: Buffer) => {
      const lines = (partial + c.toString()).split('\n');
      partial = lines.pop() ?? '';
      const line = lines.find((l) => l.includes('"mail relay started"'));
      if (!line) return;
      clearTimeout(timer);
      proc.stdout!.off('data', onData);
      resolve(JSON.parse(line) as { smtp: string; submission: string });
    };
    proc.stdout!.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the relay exited (${code}) before starting:\n${out}`));
    });
  });
  const port = (hostPort: string) => Number(hostPort.split(':').pop());
  return {
    pid: proc.pid ?? -1,
    smtpPort: port(started.smtp),
    submissionPort: port(started.submission),
    output: () => out,
    exited,
    stop: async () => {
      if (!gone()) proc.kill('SIGTERM');
      return exited;
    },
    kill: async () => {
      if (!gone()) proc.kill('SIGKILL');
      await exited;
    },
  };
}

/** The controller's side before the relay starts: the test account, one STARTTLS provider `sink` at `providerPort`, a catch-all rule to it. */
export async function configureRelay(dataDir: string, providerPort: number): Promise<void> {
  const db = openDb(dataDir);
  try {
    const store = new MailStore(db);
    await store.addAccount(ACCOUNT);
    store.putProvider({ name: 'sink', config: { type: 'smtp', host: '127.0.0.1', port: providerPort, security: 'starttls', tls_verify: false, allow_private: true } });
    store.addRule({ priority: 1, sender_domain: null, recipient_domain: null, account: null, provider: 'sink', fallback_provider: null });
  } finally {
    db.close();
  }
}

/** The relay's self-signed STARTTLS certificate (PEM), generated into the data dir at its first start. */
export function relayCert(dataDir: string): string {
  return readFileSync(join(dataDir, 'mail', 'tls', 'cert.pem'), 'utf8');
}

/** Message statuses in the relay's queue → count, read through a handle of our own (as the controller would). */
export function queueCounts(dataDir: string): Record<string, number> {
  const db = openDb(dataDir);
  try {
    const rows = db.prepare('SELECT status, count(*) AS n FROM mail_messages GROUP BY status').all() as { status: string; n: number }[];
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  } finally {
    db.close();
  }
}

/** A header's value in a raw message (first occurrence, header block only), or undefined. */
export function header(raw: Buffer, name: string): string | undefined {
  const end = raw.indexOf('\r\n\r\n');
  const head = raw.subarray(0, end < 0 ? raw.length : end).toString('latin1').replace(/\r\n[ \t]+/g, ' ');
  const m = new RegExp(`^${name}:[ \\t]*(.*)$`, 'im').exec(head);
  return m?.[1]?.trim();
}

/** Received messages grouped by Message-ID: id → the copies' values of `attemptHeader` (one entry per copy). */
export function copiesById(received: readonly Received[], attemptHeader: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const r of received) {
    const id = header(r.raw, 'Message-ID') ?? '(none)';
    out.set(id, [...(out.get(id) ?? []), header(r.raw, attemptHeader) ?? '']);
  }
  return out;
}

/**
 * A pooled nodemailer client for a relay's submission port: one connection kept open across
 * messages (a real app's setup), STARTTLS required with the relay's certificate verified, AUTH as
 * the test account.
 */
export function submitter(port: number, cert: string) {
  const t = nodemailer.createTransport({
    host: '127.0.0.1',
    port,
    secure: false,
    requireTLS: true,
    pool: true,
    maxConnections: 1,
    maxMessages: Infinity,
    tls: { ca: cert, servername: HOSTNAME },
    auth: { user: ACCOUNT.name, pass: ACCOUNT.password },
    logger: false,
  });
  // An idle pooled connection the relay drops (a crash) surfaces here; the next send reconnects.
  t.on('error', () => undefined);
  return t;
}
