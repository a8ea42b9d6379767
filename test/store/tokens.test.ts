// DNSPROXY_ADMIN_TOKEN bootstrap: once per value; a revoked one stays revoked; a new value replaces.
import { expect } from 'chai';
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { adminTokenProblem } from '../../src/model/token.js';
import { DB_FILE, openDb, type Db } from '../../src/store/db.js';
import { MIGRATIONS } from '../../src/store/migrations.js';
import { TokenStore } from '../../src/store/tokens.js';
import { tempDir } from '../helpers/tmp.js';

const A = 'first-admin-token-value-0123456789';
const B = 'second-admin-token-value-0123456789';

describe('store: admin token bootstrap', () => {
  let tmp: ReturnType<typeof tempDir>;
  let db: Db;
  beforeEach(() => (tmp = tempDir()));
  afterEach(() => {
    db?.close();
    tmp.cleanup();
  });
  /** A TokenStore as a fresh process start sees it. */
  const restart = () => {
    db?.close();
    db = openDb(tmp.dir);
    return new TokenStore(db);
  };

  it('a revoked bootstrap token stays revoked across restarts with the same value', () => {
    let tokens = restart();
    tokens.bootstrap(A);
    const id = tokens.verify(A)!;
    expect(tokens.authenticate(A)?.scope).to.equal('admin');
    tokens.revoke(id);
    tokens = restart();
    tokens.bootstrap(A);
    expect(tokens.verify(A)).to.equal(undefined);
    expect(tokens.list()).to.deep.equal([]);
  });

  it('a changed value replaces the old bootstrap token instead of adding a second one', () => {
    let tokens = restart();
    tokens.bootstrap(A);
    tokens.create('ci', 'write');
    tokens = restart();
    tokens.bootstrap(B);
    expect(tokens.verify(A)).to.equal(undefined);
    expect(tokens.authenticate(B)?.scope).to.equal('admin');
    expect(tokens.list().map((t) => t.name).sort()).to.deep.equal(['bootstrap', 'ci']);
    tokens = restart();
    tokens.bootstrap(B);
    expect(tokens.list()).to.have.length(2);
  });

  it('a value that already is a token (set by hand) becomes the admin one, once', () => {
    let tokens = restart();
    tokens.create('handmade', 'read', A);
    tokens.bootstrap(A);
    expect(tokens.authenticate(A)?.scope).to.equal('admin');
    expect(tokens.list()).to.have.length(1);
    tokens.revoke(tokens.verify(A)!);
    tokens = restart();
    tokens.bootstrap(A);
    expect(tokens.verify(A)).to.equal(undefined);
  });

  it('upgrading: the bootstrap token the older code made is recognised (same value: kept; new value: replaced)', () => {
    const old = new Database(join(tmp.dir, DB_FILE));
    for (const [i, sql] of MIGRATIONS.slice(0, 8).entries()) {
      old.exec(sql);
      old.pragma(`user_version = ${i + 1}`);
    }
    old.close();
    // What the older code's bootstrap(A) wrote (no scope column, no token_bootstrap table yet).
    const sha = (s: string) => createHash('sha256').update(s).digest('hex');
    const raw = new Database(join(tmp.dir, DB_FILE));
    raw.prepare("INSERT INTO tokens (id, name, hash, created_at) VALUES ('0a', 'bootstrap', ?, '2026-01-01T00:00:00Z')").run(sha(A));
    raw.close();
    let tokens = restart();
    tokens.bootstrap(A);
    expect(tokens.list().map((t) => [t.id, t.scope])).to.deep.equal([['0a', 'admin']]);
    tokens = restart();
    tokens.bootstrap(B);
    expect(tokens.verify(A)).to.equal(undefined);
    expect(tokens.list().map((t) => t.name)).to.deep.equal(['bootstrap']);
  });

  it('refuses a short or unusable DNSPROXY_ADMIN_TOKEN', () => {
    expect(adminTokenProblem('x'.repeat(23))).to.equal('is 23 characters; use at least 24 (e.g. the output of: openssl rand -base64 32)');
    expect(adminTokenProblem('x'.repeat(24))).to.equal(null);
    expect(adminTokenProblem(`${'x'.repeat(24)} y`)).to.include('without spaces');
  });
});
