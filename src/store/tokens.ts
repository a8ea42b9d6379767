// API bearer tokens. Only the SHA-256 of a token is stored: tokens are 256-bit random, so a fast
// hash is enough (no bcrypt on the request path) and a stolen database reveals no usable token.
import { createHash, randomBytes } from 'node:crypto';
import { AppError } from '../errors.js';
import { TOKEN_SCOPES, type TokenScope } from '../model/token.js';
import { prepared, type Db } from './db.js';

export interface TokenInfo {
  id: string;
  name: string;
  scope: TokenScope;
  created_at: string;
  last_used_at: string | null;
}

/** A scope read from the database; an unknown value (a hand edit) gets the least, never more. */
const scopeOf = (v: string): TokenScope => ((TOKEN_SCOPES as readonly string[]).includes(v) ? (v as TokenScope) : 'read');

const sha256 = (token: string) => createHash('sha256').update(token).digest('hex');
/** `last_used_at` is written at most this often per token, to keep writes off the request path. */
const TOUCH_INTERVAL_MS = 60_000;

export class TokenStore {
  private readonly touched = new Map<string, number>();

  constructor(
    private readonly db: Db,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Creates a token; the returned secret is shown once and never stored. */
  create(name: string, scope: TokenScope, secret: string = `dp_${randomBytes(32).toString('base64url')}`): { token: string; info: TokenInfo } {
    const info: TokenInfo = { id: randomBytes(6).toString('hex'), name, scope, created_at: this.now().toISOString(), last_used_at: null };
    this.db.prepare('INSERT INTO tokens (id, name, hash, scope, created_at) VALUES (?, ?, ?, ?, ?)').run(info.id, name, sha256(secret), scope, info.created_at);
    return { token: secret, info };
  }

  list(): TokenInfo[] {
    const rows = this.db.prepare('SELECT id, name, scope, created_at, last_used_at FROM tokens ORDER BY created_at, id').all() as (TokenInfo & { scope: string })[];
    return rows.map((r) => ({ ...r, scope: scopeOf(r.scope) }));
  }

  revoke(id: string): void {
    if (this.db.prepare('DELETE FROM tokens WHERE id = ?').run(id).changes === 0) throw new AppError('not_found', `no token with id ${id}`);
  }

  /** The token's id and scope when `secret` is a live token, else undefined. */
  authenticate(secret: string): { id: string; scope: TokenScope } | undefined {
    // Parsed once per connection (prepared()): every request but the probes comes through here.
    const row = prepared(this.db, 'SELECT id, scope FROM tokens WHERE hash = ?').get(sha256(secret)) as { id: string; scope: string } | undefined;
    if (!row) return undefined;
    const t = this.now().getTime();
    if ((this.touched.get(row.id) ?? 0) + TOUCH_INTERVAL_MS < t) {
      this.touched.set(row.id, t);
      this.db.prepare('UPDATE tokens SET last_used_at = ? WHERE id = ?').run(new Date(t).toISOString(), row.id);
    }
    return { id: row.id, scope: scopeOf(row.scope) };
  }

  /** The token's id when `secret` is a live token, else undefined. */
  verify(secret: string): string | undefined {
    return this.authenticate(secret)?.id;
  }

  /**
   * Start-time bootstrap. With `fixed` (DNSPROXY_ADMIN_TOKEN): the first time a value is seen, it
   * becomes an admin token named "bootstrap", replacing the token an earlier value made; the same
   * value at later starts changes nothing, so a revoked bootstrap token stays revoked. Without
   * it, an admin token named "admin" is generated when no token exists yet. Returns the generated
   * secret (to be printed once) or undefined.
   */
  bootstrap(fixed?: string): string | undefined {
    return this.db
      .transaction(() => {
        if (fixed) {
          const hash = sha256(fixed);
          const last = this.db.prepare('SELECT hash, token_id FROM token_bootstrap WHERE id = 1').get() as { hash: string; token_id: string } | undefined;
          if (last?.hash === hash) return undefined;
          if (last) this.db.prepare('DELETE FROM tokens WHERE id = ?').run(last.token_id);
          // The value may already be a token (set by hand before this table existed): it becomes the admin one.
          const existing = this.db.prepare('SELECT id FROM tokens WHERE hash = ?').pluck().get(hash) as string | undefined;
          if (existing) this.db.prepare("UPDATE tokens SET scope = 'admin' WHERE id = ?").run(existing);
          const id = existing ?? this.create('bootstrap', 'admin', fixed).info.id;
          this.db.prepare('INSERT INTO token_bootstrap (id, hash, token_id) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET hash = excluded.hash, token_id = excluded.token_id').run(hash, id);
          return undefined;
        }
        const any = this.db.prepare('SELECT 1 FROM tokens LIMIT 1').get();
        return any ? undefined : this.create('admin', 'admin').token;
      })
      .immediate();
  }
}
