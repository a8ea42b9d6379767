// Whether Caddy presents a certificate for each TLS host we route. Caddy 2.6.2's admin API says
// nothing of certificates: a name whose certificate cannot be had (ACME unreachable, a name no CA
// will issue for) is loaded like any other, and every handshake for it ends in an alert while
// Caddy retries in its log. So we ask the way a client does: a TLS handshake to Caddy's HTTPS
// listener with the host as SNI. A host whose handshake has failed for longer than the grace an
// issuance may take is `failed`, with the reason; the route shows `error` (reconcile.ts).
//
// Probes run one at a time, on timers the caller injects, never on a request's stack.
import tls from 'node:tls';

/** A handshake Caddy does not finish within this is a failure (it answers from memory in ms). */
export const PROBE_TIMEOUT_MS = 5_000;
/** ACME issuance takes seconds; with retries a minute. A host younger than this is `pending`, not `failed`. */
export const CERT_GRACE_MS = 60_000;
/** How often a host without a certificate is probed again (how soon a fix is seen). */
export const CERT_PROBE_INTERVAL_MS = 30_000;
/** How often a host with its certificate is probed again (a renewal that fails shows within this): one handshake per host, not per 30 s. */
export const CERT_OK_INTERVAL_MS = 600_000;

export type ProbeResult = { ok: true; issuer: string; notAfter: string } | { ok: false; reason: string };

export type CertState = { state: 'ok'; issuer: string; not_after: string } | { state: 'pending'; reason: string | null } | { state: 'failed'; reason: string };

/** The name a handshake asks for to check `host`: a wildcard host is asked for as one name under it. */
export function probeName(host: string): string {
  return host.startsWith('*.') ? `dnsproxy-cert-check.${host.slice(2)}` : host;
}

/** One handshake to `ip:port` with SNI `servername`; the certificate is read, not verified (a local CA is fine). */
export function probeCertificate(o: { ip: string; port: number; servername: string; timeoutMs?: number }): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (r: ProbeResult) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve(r);
    };
    const socket = tls.connect({ host: o.ip, port: o.port, servername: o.servername, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => {
      const cert = socket.getPeerCertificate();
      if (!cert || Object.keys(cert).length === 0) return done({ ok: false, reason: `no certificate presented for ${o.servername}` });
      const mismatch = tls.checkServerIdentity(o.servername, cert);
      if (mismatch) return done({ ok: false, reason: `the certificate presented for ${o.servername} does not cover it (${mismatch.message})` });
      const issuer = [cert.issuer?.O, cert.issuer?.CN].flat().filter(Boolean).join(', ') || 'unknown issuer';
      done({ ok: true, issuer, notAfter: new Date(cert.valid_to).toISOString() });
    });
    socket.setTimeout(o.timeoutMs ?? PROBE_TIMEOUT_MS, () => done({ ok: false, reason: `no TLS handshake for ${o.servername} within ${o.timeoutMs ?? PROBE_TIMEOUT_MS} ms` }));
    socket.once('error', (e: Error & { code?: string }) => {
      const alert = /alert (.*)$/i.exec(e.message)?.[1] ?? e.code ?? e.message;
      done({ ok: false, reason: `TLS handshake for ${o.servername} failed (${alert}): Caddy has no certificate for it (see Caddy's log for the issuer's answer)` });
    });
  });
}

export interface CertWatchOptions {
  probe: (host: string) => Promise<ProbeResult>;
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (t: unknown) => void;
  graceMs?: number;
  intervalMs?: number;
  okIntervalMs?: number;
  /** Called after a probe changed a host's state (and only then). */
  onChange: (states: ReadonlyMap<string, CertState>) => void;
}

/**
 * Keeps the certificate state of the TLS hosts Caddy serves. `watch(hosts)` after each push that
 * reached Caddy; new hosts are probed at once (in turn), every host again each interval.
 */
export class CertWatch {
  private readonly hosts = new Map<string, { since: number; state: CertState; next: number; version: string }>();
  private timer: unknown = null;
  private running = false;
  private stopped = false;
  private readonly now: () => number;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (t: unknown) => void;

  constructor(private readonly o: CertWatchOptions) {
    this.now = o.now ?? Date.now;
    this.setTimer = o.setTimer ?? ((fn, ms) => setTimeout(fn, ms).unref());
    this.clearTimer = o.clearTimer ?? ((t) => clearTimeout(t as NodeJS.Timeout));
  }

  /**
   * The TLS hosts now served (lower case, no trailing dot), each with the version of the route
   * serving it: a host new or with a changed route starts over (probed at once, a new grace).
   * Others are forgotten.
   */
  watch(hosts: ReadonlyMap<string, string>): void {
    const now = this.now();
    let changed = false;
    for (const [h, entry] of [...this.hosts]) if (hosts.get(h) !== entry.version) changed = this.hosts.delete(h) || changed;
    for (const [h, version] of hosts) if (!this.hosts.has(h)) this.hosts.set(h, { since: now, state: { state: 'pending', reason: null }, next: now, version });
    if (changed) this.o.onChange(this.states());
    this.schedule();
  }

  states(): ReadonlyMap<string, CertState> {
    return new Map([...this.hosts].map(([h, v]) => [h, v.state]));
  }

  /** Probes every host due now, one at a time; resolves when done (tests call it with a fake clock). */
  async runDue(): Promise<void> {
    if (this.running || this.stopped) return;
    this.running = true;
    try {
      for (const [host, entry] of this.hosts) {
        if (entry.next > this.now()) continue;
        const r = await this.o.probe(host);
        if (this.stopped || this.hosts.get(host) !== entry) continue;
        const now = this.now();
        entry.next = now + (r.ok ? (this.o.okIntervalMs ?? CERT_OK_INTERVAL_MS) : (this.o.intervalMs ?? CERT_PROBE_INTERVAL_MS));
        const state: CertState = r.ok ? { state: 'ok', issuer: r.issuer, not_after: r.notAfter } : now - entry.since < (this.o.graceMs ?? CERT_GRACE_MS) ? { state: 'pending', reason: r.reason } : { state: 'failed', reason: r.reason };
        if (JSON.stringify(state) !== JSON.stringify(entry.state)) {
          entry.state = state;
          this.o.onChange(this.states());
        }
        if (state.state === 'pending') entry.next = Math.min(entry.next, entry.since + (this.o.graceMs ?? CERT_GRACE_MS));
      }
    } finally {
      this.running = false;
      this.schedule();
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) this.clearTimer(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    if (this.stopped || this.running) return;
    if (this.timer !== null) this.clearTimer(this.timer);
    this.timer = null;
    if (this.hosts.size === 0) return;
    const next = Math.min(...[...this.hosts.values()].map((e) => e.next));
    this.timer = this.setTimer(() => {
      this.timer = null;
      void this.runDue();
    }, Math.max(0, next - this.now()));
  }
}
