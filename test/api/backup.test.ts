// GET /api/v1/backup: the database as one SQLite file, admin only, nothing left behind.
import { expect } from 'chai';
import Database from 'better-sqlite3';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { apiFixture, type ApiFixture } from '../helpers/api.js';
import { tempDir } from '../helpers/tmp.js';

describe('api: /api/v1/backup', () => {
  let f: ApiFixture;
  beforeEach(async () => (f = await apiFixture()));
  afterEach(async () => f.close());

  it('an admin gets a SQLite file holding the records; the copy in the data dir is gone afterwards', async () => {
    expect((await f.app.inject({ method: 'PUT', url: '/api/v1/records/kept/A', headers: f.auth, payload: { name: 'kept', type: 'A', values: ['192.0.2.9'] } })).statusCode).to.equal(201);
    const res = await f.app.inject({ method: 'GET', url: '/api/v1/backup', headers: f.auth });
    expect(res.statusCode).to.equal(200);
    expect(res.headers['content-type']).to.equal('application/vnd.sqlite3');
    expect(String(res.headers['content-disposition'])).to.match(/^attachment; filename="dnsproxy-.*\.sqlite"$/);
    expect(res.rawPayload.subarray(0, 16).toString('latin1')).to.equal('SQLite format 3\0');
    const tmp = tempDir();
    try {
      const file = join(tmp.dir, 'b.sqlite');
      writeFileSync(file, res.rawPayload);
      const db = new Database(file, { readonly: true });
      expect(db.prepare("SELECT data FROM records WHERE name = 'kept.home.arpa.' AND type = 'A'").pluck().get()).to.equal('["192.0.2.9"]');
      db.close();
    } finally {
      tmp.cleanup();
    }
    expect(readdirSync(f.dir).filter((n) => n.startsWith('.backup-'))).to.deep.equal([]);
  });

  it('below admin: 403 (a backup holds every secret)', async () => {
    const write = f.tokens.create('w', 'write').token;
    const res = await f.app.inject({ method: 'GET', url: '/api/v1/backup', headers: { authorization: `Bearer ${write}` } });
    expect(res.statusCode).to.equal(403);
    expect(res.json<{ error: { code: string } }>().error.code).to.equal('forbidden');
    expect((await f.app.inject({ method: 'GET', url: '/api/v1/backup' })).statusCode).to.equal(401);
  });
});
