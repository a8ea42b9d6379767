// ACME DNS-01 from our own zones: the controller is the ACME client (acme-client), and answers
// the CA's DNS-01 challenges itself — each `_acme-challenge.<name>` TXT value is a record set in
// our zone, written through the RecordStore (so our DNS server answers it, like any record), and
// checked with a real query to our server before the CA is told to look. The certificate and key
// go to the store (source `acme-dns01`), from where Caddy serves them; `Renewer` renews each one
// at two thirds of its lifetime, with backoff after failures, on an injected clock and timers.
import { X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import * as acme from 'acme-client';
import { AppError, type FieldIssue } from '../errors.js';
import type { Logger } from '../log/index.js';
import { absolute, zoneOf } from '../model/name.js';
import type { RecordData } from '../model/record.js';
import type { DnsResolver } from '../mail/resolver.js';
import type { RecordStore } from '../store/records.js';
import { DIR_MODE, FILE_MODE } from '../store/files.js';
import type { Timers } from '../timers.js';
import type { CertificateStore, Renewal } from './store.js';
import type { CertificateView } from '../model/cert.js';

/** Let's Encrypt's production directory: the default CA, as Caddy's. */
export const DEFAULT_ACME_DIRECTORY = 'https://acme-v02.api.letsencrypt.org/directory';
/** TTL of a published challenge: short, so a resolver in front of the CA does not keep a stale value long. */
export const CHALLENGE_TTL = 60;
/** How long our own server may take to answer a published value (it is in the index at the commit; this covers a loaded box). */
export const VISIBLE_TIMEOUT_MS = 10_000;
/** Between two checks of our own server for the published value. */
const VISIBLE_POLL_MS = 50;
/** acme-client's polls of a pending challenge/order: first after this, doubling to the max, this many times (pebble answers in ~0.1–1 s, public CAs in seconds). */
export const ACME_POLL_MIN_MS = 250;
export const ACME_POLL_MAX_MS = 10_000;
export const ACME_POLL_ATTEMPTS = 12;
/**
 * acme-client retries a failed request (network error, 429, 5xx) itself: this many times, waiting
 * this many seconds times the attempt. Its default (5 × 5 s, 75 s) would hold an API call that
 * long; the Renewer retries with its own backoff anyway.
 */
export const ACME_HTTP_RETRIES = 2;
export const ACME_HTTP_RETRY_S = 1;
/** Renew at this fraction of the lifetime (issue 16: two thirds). */
export const RENEW_AT = 2 / 3;
/** After a failed renewal, try again after this, doubling per failure up to RETRY_MAX_MS. */
export const RETRY_MIN_MS = 60_000;
export const RETRY_MAX_MS = 6 * 3600_000;
/** A renewal timer never waits longer than this (setTimeout's limit is ~24.8 days; a changed clock is noticed within it). */
export const MAX_TIMER_MS = 3600_000;

export interface AcmeSettings {
  /** ACME directory URL (acme_ca). */
  directoryUrl: string;
  /** PEM of roots to trust for the directory's HTTPS (acme_ca_root), besides the system's. */
  caRootPem?: string;
  /** ACME account contact (acme_email). */
  email?: string;
}

export interface Dns01Options {
  store: CertificateStore;
  records: RecordStore;
  /** The API's unit of work (one IMMEDIATE transaction; the DNS index hears of it after the commit). */
  transaction: <T>(fn: () => T) => T;
  zones: readonly string[];
  /** Asks OUR DNS server (dns2Resolver(host, port)): a value is handed to the CA only once our server answers it. */
  resolver: DnsResolver;
  acme: AcmeSettings;
  /** Where the ACME account key is kept (`<dir>/acme-account.key`, 0600); absent: a new account per process. */
  dir?: string;
  now: () => Date;
  timers: Timers;
  log: Logger;
}

/** `acme_dns01.names` problems: each name's base (without `*.`) must be in a zone we serve. */
export function dns01NameProblems(names: readonly string[], zones: readonly string[], field = 'acme_dns01.names'): FieldIssue[] {
  const out: FieldIssue[] = [];
  for (const [i, n] of names.entries()) {
    const base = n.replace(/^\*\./, '');
    if (!zoneOf(absolute(base), zones)) out.push({ path: `${field}.${i}`, message: `${n} is outside the zones we serve (${zones.join(', ')}): DNS-01 needs its _acme-challenge name in our zone` });
  }
  const seen = new Set<string>();
  for (const [i, n] of names.entries()) {
    if (seen.has(n)) out.push({ path: `${field}.${i}`, message: `${n} is listed twice` });
    seen.add(n);
  }
  return out;
}

/** When a certificate valid from `notBefore` to `notAfter` is due for renewal (RENEW_AT of its lifetime). */
export function renewalDue(notBeforeMs: number, notAfterMs: number): number {
  return notBeforeMs + Math.floor((notAfterMs - notBeforeMs) * RENEW_AT);
}

/** The wait before retry number `failures` (1, 2, …): RETRY_MIN_MS doubling, at most RETRY_MAX_MS. */
export function retryDelay(failures: number): number {
  return Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.max(0, failures - 1));
}

interface Published {
  name: string;
  zone: string;
  value: string;
}

/**
 * Gets certificates with DNS-01 answered from our zones. Events: `issued` (view), `renewed`
 * (view), `failed` ({ id?, names, error }).
 */
export class Dns01Issuer extends EventEmitter {
  private clientP?: Promise<acme.Client>;

  constructor(private readonly o: Dns01Options) {
    super();
  }

  /** 400 naming `acme_dns01.names.N` for a name outside our zones (the API calls it before ordering). */
  check(names: readonly string[]): void {
    const problems = dns01NameProblems(names, this.o.zones);
    if (problems.length) throw new AppError('invalid_body', undefined, problems);
  }

  /** Orders a new certificate for `names` and stores it (source `acme-dns01`). 502 `acme_failed` with the CA's reason. */
  async order(names: readonly string[]): Promise<CertificateView> {
    this.check(names);
    let pair: { cert: string; key: string };
    try {
      pair = await this.issue(names);
    } catch (e) {
      const error = reasonOf(e);
      this.o.log.warn('certificate order failed', { names, error });
      this.emit('failed', { names, error });
      throw new AppError('acme_failed', `the ACME CA did not issue a certificate for ${names.join(', ')}: ${error}`);
    }
    const { certificate } = this.o.store.add(pair, 'acme-dns01', this.renewalFor(names, pair.cert));
    this.o.log.info('certificate issued', { id: certificate.id, names: certificate.names, not_after: certificate.not_after, sha256: certificate.fingerprint_sha256 });
    this.emit('issued', certificate);
    return certificate;
  }

  /** Gets a new certificate for the names of `id` and replaces it in place. Throws on failure (the Renewer records it). */
  async renew(id: string, renewal: Renewal): Promise<CertificateView> {
    const pair = await this.issue(renewal.names);
    const certificate = this.o.store.replace(id, pair, this.renewalFor(renewal.names, pair.cert));
    this.o.log.info('certificate renewed', { id, names: certificate.names, not_after: certificate.not_after, sha256: certificate.fingerprint_sha256 });
    this.emit('renewed', certificate);
    return certificate;
  }

  private renewalFor(names: readonly string[], chain: string): Renewal {
    const leaf = new X509Certificate(chain);
    const due = renewalDue(Date.parse(leaf.validFrom), Date.parse(leaf.validTo));
    // A certificate already past its renewal point at our clock (skew, a short-lived one) is retried later, not at once in a loop.
    return { names: [...names], due_ms: Math.max(due, this.o.now().getTime() + RETRY_MIN_MS), failures: 0, last_error: null };
  }

  private client(): Promise<acme.Client> {
    this.clientP ??= (async () => {
      const settings = (acme.axios.defaults as unknown as { acmeSettings?: { retryMaxAttempts: number; retryDefaultDelay: number } }).acmeSettings;
      if (settings) Object.assign(settings, { retryMaxAttempts: ACME_HTTP_RETRIES, retryDefaultDelay: ACME_HTTP_RETRY_S });
      if (this.o.acme.caRootPem) {
        // acme-client talks through its own axios instance: trust the configured roots besides the system's.
        const { rootCertificates } = await import('node:tls');
        acme.axios.defaults.httpsAgent = new https.Agent({ ca: [...rootCertificates, this.o.acme.caRootPem] });
      }
      const accountKey = await this.accountKey();
      const client = new acme.Client({ directoryUrl: this.o.acme.directoryUrl, accountKey, backoffMin: ACME_POLL_MIN_MS, backoffMax: ACME_POLL_MAX_MS, backoffAttempts: ACME_POLL_ATTEMPTS });
      await client.createAccount({ termsOfServiceAgreed: true, ...(this.o.acme.email ? { contact: [`mailto:${this.o.acme.email}`] } : {}) }).catch((e: unknown) => {
        throw new Error(`cannot use an account at the ACME CA ${this.o.acme.directoryUrl}: ${reasonOf(e)}`);
      });
      return client;
    })();
    // A failed start (CA unreachable) is tried again at the next order.
    this.clientP.catch(() => (this.clientP = undefined));
    return this.clientP;
  }

  private async accountKey(): Promise<Buffer> {
    if (!this.o.dir) return acme.crypto.createPrivateEcdsaKey();
    const file = join(this.o.dir, 'acme-account.key');
    if (existsSync(file)) return readFileSync(file);
    const key = await acme.crypto.createPrivateEcdsaKey();
    mkdirSync(this.o.dir, { recursive: true, mode: DIR_MODE });
    writeFileSync(file, key, { mode: FILE_MODE });
    return key;
  }

  /** One order: publish every challenge, wait for our server to answer them, let the CA validate, finalize. */
  private async issue(names: readonly string[]): Promise<{ cert: string; key: string }> {
    const client = await this.client();
    const order = await client.createOrder({ identifiers: names.map((value) => ({ type: 'dns', value })) }).catch((e: unknown) => {
      throw new Error(`the ACME CA at ${this.o.acme.directoryUrl} did not take the order: ${reasonOf(e)}`);
    });
    const authzs = await client.getAuthorizations(order);
    const pending: { pub: Published; challenge: acme.Authorization['challenges'][number] }[] = [];
    for (const authz of authzs) {
      if (authz.status === 'valid') continue;
      const challenge = authz.challenges.find((c) => c.type === 'dns-01');
      if (!challenge) throw new Error(`the CA offers no dns-01 challenge for ${authz.identifier.value}`);
      const name = absolute(`_acme-challenge.${authz.identifier.value}`);
      const zone = zoneOf(name, this.o.zones);
      if (!zone) throw new Error(`${name} is outside our zones`);
      pending.push({ pub: { name, zone, value: await client.getChallengeKeyAuthorization(challenge) }, challenge });
    }
    const published = pending.map((p) => p.pub);
    try {
      this.publish(published);
      await this.visible(published);
      for (const p of pending) await client.completeChallenge(p.challenge);
      for (const p of pending) await client.waitForValidStatus(p.challenge);
      const [key, csr] = await acme.crypto.createCsr({ commonName: names[0]!, altNames: [...names] }, await acme.crypto.createPrivateEcdsaKey());
      const finalized = await client.finalizeOrder(order, csr);
      const cert = await client.getCertificate(finalized);
      return { cert, key: key.toString() };
    } finally {
      try {
        this.unpublish(published);
      } catch (e) {
        this.o.log.warn('removing _acme-challenge values failed; they stay in the zone until the next order', { error: reasonOf(e) });
      }
    }
  }

  /** Adds each value to its TXT set (one transaction; other values of the set are kept). */
  private publish(list: readonly Published[]): void {
    if (!list.length) return;
    this.o.transaction(() => {
      for (const [name, values] of byName(list)) {
        const existing = this.o.records.get(name, 'TXT');
        const have = (existing?.values ?? []) as unknown[];
        const add = values.filter((v) => !have.includes(v.value));
        this.o.records.putOne({
          name,
          zone: existing?.zone ?? values[0]!.zone,
          data: { type: 'TXT', values: [...have, ...add.map((v) => v.value)] } as RecordData,
          ttl: existing?.ttl ?? CHALLENGE_TTL,
          proxy: null,
          service_name: existing?.service_name ?? null,
        });
      }
    });
  }

  /** Takes the values out again; a set left empty is removed. */
  private unpublish(list: readonly Published[]): void {
    if (!list.length) return;
    this.o.transaction(() => {
      for (const [name, values] of byName(list)) {
        const existing = this.o.records.get(name, 'TXT');
        if (!existing) continue;
        const drop = new Set(values.map((v) => v.value));
        const keep = (existing.values as unknown[]).filter((v) => typeof v !== 'string' || !drop.has(v));
        if (!keep.length) this.o.records.remove(name, 'TXT');
        else if (keep.length !== existing.values.length) this.o.records.putOne({ name, zone: existing.zone, data: { type: 'TXT', values: keep } as RecordData, ttl: existing.ttl, proxy: null, service_name: existing.service_name });
      }
    });
  }

  /** Resolves once our own DNS server answers every published value (asked with dns2, as the CA will). */
  private async visible(list: readonly Published[]): Promise<void> {
    const end = Date.now() + VISIBLE_TIMEOUT_MS;
    for (const [name, values] of byName(list)) {
      for (;;) {
        const answered = await this.o.resolver(name.replace(/\.$/, ''), 'TXT').then(
          (rrs) => (rrs as string[][]).map((strings) => strings.join('')),
          () => [] as string[],
        );
        if (values.every((v) => answered.includes(v.value))) break;
        if (Date.now() > end) throw new Error(`our DNS server does not answer ${name} TXT with the challenge value after ${VISIBLE_TIMEOUT_MS} ms`);
        await new Promise((r) => setTimeout(r, VISIBLE_POLL_MS));
      }
    }
  }
}

function byName(list: readonly Published[]): Map<string, Published[]> {
  const out = new Map<string, Published[]>();
  for (const p of list) out.set(p.name, [...(out.get(p.name) ?? []), p]);
  return out;
}

function reasonOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Renews ACME certificates: one timer for the earliest `due_ms` in the store (at most
 * MAX_TIMER_MS ahead); when it fires, each certificate due by the injected clock is renewed in
 * turn. A failure is recorded on the certificate (`failures`, `last_error`, the next try after
 * retryDelay()) and logged; the next success clears it. `tick()` is what the timer runs.
 */
export class Renewer extends EventEmitter {
  private timer: unknown = null;
  private running: Promise<void> | null = null;
  private stopped = true;

  constructor(
    private readonly issuer: Pick<Dns01Issuer, 'renew'>,
    private readonly o: { store: CertificateStore; now: () => Date; timers: Timers; log: Logger },
  ) {
    super();
  }

  start(): void {
    this.stopped = false;
    this.schedule();
  }

  stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) this.o.timers.clearTimeout(this.timer);
    this.timer = null;
    return this.running ?? Promise.resolve();
  }

  /** Plans the next tick (after a new certificate was stored, or a tick). */
  schedule(): void {
    if (this.stopped) return;
    if (this.timer !== null) this.o.timers.clearTimeout(this.timer);
    this.timer = null;
    const dues = this.o.store.renewals().map((r) => r.renewal.due_ms);
    if (!dues.length) return;
    const wait = Math.min(MAX_TIMER_MS, Math.max(0, Math.min(...dues) - this.o.now().getTime()));
    this.timer = this.o.timers.setTimeout(() => {
      this.timer = null;
      void this.tick();
    }, wait);
  }

  /** Renews every certificate due now (one at a time), then schedules the next tick. */
  tick(): Promise<void> {
    if (this.running) return this.running;
    const run = async () => {
      // Off the caller's stack: `running` is set before the body runs (a tick with nothing due finishes synchronously).
      await Promise.resolve();
      try {
        for (const { id, renewal } of this.o.store.renewals()) {
          if (this.stopped || renewal.due_ms > this.o.now().getTime()) continue;
          try {
            await this.issuer.renew(id, renewal);
          } catch (e) {
            const failures = renewal.failures + 1;
            const error = reasonOf(e);
            const next = { ...renewal, failures, last_error: error, due_ms: this.o.now().getTime() + retryDelay(failures) };
            try {
              this.o.store.setRenewal(id, next);
            } catch {
              // removed meanwhile
            }
            this.o.log.warn('certificate renewal failed', { id, names: renewal.names, failures, next_try: new Date(next.due_ms).toISOString(), error });
            this.emit('failed', { id, names: renewal.names, error });
          }
        }
      } finally {
        this.running = null;
        this.schedule();
        this.emit('tick');
      }
    };
    return (this.running = run());
  }
}
