// The one certificate store: uploaded and ACME-issued certificates with their keys, in the shared
// SQLite file (table `certificates`, migration 17). Contract: every write is one IMMEDIATE
// transaction (a savepoint inside a unit of work, src/store/simulate.ts) that checks the pair
// first (src/model/cert.ts) and commits or throws having changed nothing; listeners (the Caddy
// reconciler) hear of it after the commit; a key leaves this module only through `served()` and
// `forHost()` (Caddy's config, the relay's TLS context), never through `list()` / `get()`.
import { randomBytes } from 'node:crypto';
import { AppError, fieldError } from '../errors.js';
import { logger } from '../log/index.js';
import { checkCertPair, describeCert, nameCovers, type CertificateUpload, type CertificateView, type CertSource } from '../model/cert.js';
import { prepared, type Db } from '../store/db.js';
import { notify, type Notifying } from '../store/simulate.js';

/** What the renewer keeps of an ACME certificate (JSON column `renewal`). */
export interface Renewal {
  /** The names ordered (a wildcard stays `*.zone`). */
  names: string[];
  /** When the next renewal attempt is due (two thirds of the lifetime, then backoff after failures). */
  due_ms: number;
  failures: number;
  last_error: string | null;
}

/** A certificate with its key, for the two consumers that must present it. */
export interface ServedCert {
  id: string;
  names: string[];
  chain: string;
  key: string;
  not_after_ms: number;
  /** ms of the last write (the relay swaps when it changes). */
  updated_at: string;
}

interface Row {
  id: string;
  source: CertSource;
  names: string;
  chain: string;
  key: string;
  fingerprint: string;
  not_before_ms: number;
  not_after_ms: number;
  renewal: string | null;
  created_at: string;
  updated_at: string;
}

/** Columns every listing reads: never `key`. */
const PUBLIC_COLUMNS = 'id, source, names, chain, fingerprint, not_before_ms, not_after_ms, renewal, created_at, updated_at';

export type CertListener = () => void;

export const newCertId = (): string => `crt_${randomBytes(8).toString('hex')}`;

export class CertificateStore implements Notifying {
  muted = false;
  held: (() => void)[] | null = null;
  private readonly listeners: CertListener[] = [];
  private readonly log = logger('certs.store');

  constructor(
    private readonly db: Db,
    private readonly now: () => Date = () => new Date(),
    private readonly newId: () => string = newCertId,
  ) {}

  onChange(listener: CertListener): void {
    this.listeners.push(listener);
  }

  /** Every stored certificate, oldest first, without keys. */
  list(): CertificateView[] {
    return (prepared(this.db, `SELECT ${PUBLIC_COLUMNS} FROM certificates ORDER BY created_at, id`).all() as Omit<Row, 'key'>[]).map((r) => this.view(r));
  }

  get(id: string): CertificateView | undefined {
    const row = prepared(this.db, `SELECT ${PUBLIC_COLUMNS} FROM certificates WHERE id = ?`).get(id) as Omit<Row, 'key'> | undefined;
    return row && this.view(row);
  }

  /**
   * Stores a pair after checking it at the store's clock: 400 naming `cert` or `key` (malformed
   * PEM, key mismatch, chain order, expired or not yet valid, no DNS name), 409 when the same leaf
   * is stored already. Returns the view and the check's warnings.
   */
  add(pair: CertificateUpload, source: CertSource, renewal: Renewal | null = null): { certificate: CertificateView; warnings: string[] } {
    const check = this.check(pair);
    return this.write(() => {
      const dup = prepared(this.db, 'SELECT id FROM certificates WHERE fingerprint = ?').get(check.info.fingerprint_sha256) as { id: string } | undefined;
      if (dup) throw new AppError('conflict', `this certificate is stored already as ${dup.id} (sha256 ${check.info.fingerprint_sha256})`);
      const at = this.now().toISOString();
      const id = this.newId();
      prepared(
        this.db,
        `INSERT INTO certificates (id, source, names, chain, key, fingerprint, not_before_ms, not_after_ms, renewal, created_at, updated_at)
         VALUES (@id, @source, @names, @chain, @key, @fingerprint, @not_before_ms, @not_after_ms, @renewal, @at, @at)`,
      ).run({ id, source, ...pairColumns(check, pair, renewal), at });
      return { certificate: this.get(id)!, warnings: check.warnings };
    });
  }

  /** Replaces the pair of `id` (a renewal), keeping its id; checked like add(). */
  replace(id: string, pair: CertificateUpload, renewal: Renewal | null): CertificateView {
    const check = this.check(pair);
    return this.write(() => {
      const changes = prepared(
        this.db,
        `UPDATE certificates SET names = @names, chain = @chain, key = @key, fingerprint = @fingerprint, not_before_ms = @not_before_ms,
         not_after_ms = @not_after_ms, renewal = @renewal, updated_at = @at WHERE id = @id`,
      ).run({ id, ...pairColumns(check, pair, renewal), at: this.now().toISOString() }).changes;
      if (changes === 0) throw new AppError('not_found', `no certificate ${id}`);
      return this.get(id)!;
    });
  }

  /** Records the renewer's bookkeeping (due time, failures); Caddy's config does not change, so nobody is told. */
  setRenewal(id: string, renewal: Renewal): void {
    prepared(this.db, 'UPDATE certificates SET renewal = ? WHERE id = ?').run(JSON.stringify(renewal), id);
  }

  /** The renewal state of each ACME certificate. */
  renewals(): { id: string; renewal: Renewal; not_after_ms: number }[] {
    const rows = prepared(this.db, 'SELECT id, renewal, not_after_ms FROM certificates WHERE renewal IS NOT NULL ORDER BY id').all() as { id: string; renewal: string; not_after_ms: number }[];
    return rows.map((r) => ({ id: r.id, renewal: JSON.parse(r.renewal) as Renewal, not_after_ms: r.not_after_ms }));
  }

  /** Removes a certificate; 404 when there is none. */
  remove(id: string): CertificateView {
    return this.write(() => {
      const had = this.get(id);
      if (!had) throw new AppError('not_found', `no certificate ${id}`);
      prepared(this.db, 'DELETE FROM certificates WHERE id = ?').run(id);
      return had;
    });
  }

  /**
   * Every certificate with its key, by id; with `nowMs`, only those not expired then (what Caddy
   * loads: Caddy manages no certificate of its own for a name a loaded one covers, so an expired
   * one would be served for good instead of Caddy's own).
   */
  served(nowMs?: number): ServedCert[] {
    const rows = prepared(this.db, 'SELECT id, names, chain, key, not_after_ms, updated_at FROM certificates ORDER BY id').all() as Pick<Row, 'id' | 'names' | 'chain' | 'key' | 'not_after_ms' | 'updated_at'>[];
    return rows.filter((r) => nowMs === undefined || r.not_after_ms > nowMs).map((r) => ({ ...r, names: JSON.parse(r.names) as string[] }));
  }

  /**
   * The certificate to present for `host` at `nowMs`: among the unexpired ones naming it, an exact
   * name before a wildcard, then the one valid longest. Undefined when none covers it.
   */
  forHost(host: string, nowMs: number): ServedCert | undefined {
    let best: { cert: ServedCert; exact: boolean } | undefined;
    for (const cert of this.served()) {
      if (cert.not_after_ms <= nowMs) continue;
      const exact = cert.names.includes(host.toLowerCase().replace(/\.$/, ''));
      if (!exact && !cert.names.some((n) => nameCovers(n, host))) continue;
      if (!best || (exact && !best.exact) || (exact === best.exact && cert.not_after_ms > best.cert.not_after_ms)) best = { cert, exact };
    }
    return best?.cert;
  }

  /** Grows with every write of a certificate (triggers): what the relay polls. */
  version(): number {
    return (prepared(this.db, 'SELECT v FROM certificates_version WHERE id = 1').get() as { v: number }).v;
  }

  private check(pair: CertificateUpload) {
    const check = checkCertPair(pair.cert, pair.key, this.now().getTime(), { needNames: true });
    if (!check.ok) throw fieldError(check.field, check.reason);
    return check;
  }

  private view(r: Omit<Row, 'key'>): CertificateView {
    let subject = '';
    let issuer = '';
    let serial = '';
    let chainLength = 0;
    try {
      const x = describeCertCached(r.chain);
      ({ subject, issuer, serial } = x);
      chainLength = x.chain_length;
    } catch (e) {
      this.log.error('stored certificate does not parse', { id: r.id, reason: (e as Error).message });
    }
    const renewal = r.renewal ? (JSON.parse(r.renewal) as Renewal) : null;
    return {
      id: r.id,
      source: r.source,
      names: JSON.parse(r.names) as string[],
      subject,
      issuer,
      not_before: new Date(r.not_before_ms).toISOString(),
      not_after: new Date(r.not_after_ms).toISOString(),
      fingerprint_sha256: r.fingerprint,
      serial,
      chain_length: chainLength,
      created_at: r.created_at,
      updated_at: r.updated_at,
      renewal: renewal && { names: renewal.names, due_at: new Date(renewal.due_ms).toISOString(), last_error: renewal.last_error, failures: renewal.failures },
    };
  }

  private write<T>(body: () => T): T {
    const out = this.db.transaction(body).immediate();
    notify(this, () => {
      for (const l of this.listeners) l();
    });
    return out;
  }
}

/** PEM as stored and handed on: CRLF folded to LF, one trailing newline. */
/** The columns a checked pair fills (add and replace alike). */
function pairColumns(check: ReturnType<CertificateStore["check"]>, pair: CertificateUpload, renewal: Renewal | null) {
  return {
    names: JSON.stringify(check.dnsNames),
    chain: normalisePem(pair.cert),
    key: normalisePem(pair.key),
    fingerprint: check.info.fingerprint_sha256,
    not_before_ms: Date.parse(check.info.not_before),
    not_after_ms: Date.parse(check.info.not_after),
    renewal: renewal ? JSON.stringify(renewal) : null,
  };
}

function normalisePem(pem: string): string {
  return `${pem.replace(/\r\n/g, '\n').trim()}\n`;
}

const described = new Map<string, ReturnType<typeof describeCert>>();
/** describeCert() of a stored chain, cached by its text (listing parses each chain once). */
function describeCertCached(chain: string) {
  let d = described.get(chain);
  if (!d) {
    if (described.size > 1000) described.clear();
    described.set(chain, (d = describeCert(chain, 0)));
  }
  return d;
}
