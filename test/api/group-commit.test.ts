// The API's writes are group-committed (src/store/group.ts): the writes of one event-loop turn share
// one transaction and one fsync, each still gets its own result, and no reply runs ahead of its commit.
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { join } from 'node:path';
import type { LightMyRequestResponse } from 'fastify';
import type { RecordChange } from '../../src/model/record.js';
import { DB_FILE } from '../../src/store/db.js';
import { apiFixture, type ApiFixture } from '../helpers/api.js';

describe('api: group commit of the writes of one turn', () => {
  let f: ApiFixture;
  /** The held flush of the group being filled (the test releases it). */
  let flush: (() => void) | null;
  /** Resolves when this many units wait for the next commit. */
  let filled: { n: number; resolve: () => void } | null;
  /** Per commit: how many units it held and how many replies had arrived by then. */
  let commits: { units: number; repliesBefore: number }[];
  let replies: number;
  let changes: RecordChange[];

  beforeEach(async () => {
    flush = null;
    filled = null;
    commits = [];
    replies = 0;
    changes = [];
    f = await apiFixture({
      group: {
        defer: (fn) => void (flush = fn),
        queued: (waiting) => {
          if (filled && waiting >= filled.n) filled.resolve();
        },
        committed: (units) => void commits.push({ units, repliesBefore: replies }),
      },
    });
    f.records.onChange((c) => void changes.push(c));
  });
  afterEach(async () => f.close());

  const waitFor = (n: number) => new Promise<void>((resolve) => (filled = { n, resolve }));
  const send = (method: 'POST' | 'PUT' | 'DELETE', url: string, payload?: object): Promise<LightMyRequestResponse> =>
    f.app.inject({ method, url, headers: f.auth, ...(payload ? { payload } : {}) }).then((res) => {
      replies++;
      return res;
    });
  const put = (name: string, values: string[]) => send('PUT', `/api/v1/records/${name}.home.arpa./A`, { name, type: 'A', values });
  /** Sends the requests, waits until all are in the group, then commits it; the responses in order. */
  async function oneGroup(requests: (() => Promise<LightMyRequestResponse>)[], queued = requests.length): Promise<LightMyRequestResponse[]> {
    const full = waitFor(queued);
    const out = Promise.all(requests.map((r) => r()));
    await full;
    expect(replies, 'no reply before the commit').to.equal(0);
    const release = flush;
    expect(release, 'the flush is scheduled').to.be.a('function');
    flush = null;
    release!();
    return out;
  }

  it('commits the writes of one turn in one transaction, each with its own reply, none before the commit', async () => {
    const res = await oneGroup([1, 2, 3, 4, 5].map((i) => () => put(`host${i}`, [`192.0.2.${i}`])));
    expect(res.map((r) => r.statusCode)).to.deep.equal([201, 201, 201, 201, 201]);
    res.forEach((r, i) => expect(r.json().record).to.deep.include({ name: `host${i + 1}.home.arpa.`, values: [`192.0.2.${i + 1}`] }));
    expect(commits).to.deep.equal([{ units: 5, repliesBefore: 0 }]);
    expect(f.group.counts).to.include({ commits: 1, units: 5, failed: 0 });
    // One notification per committed write, in order, each with the next serial.
    expect(changes.map((c) => c.upserted.map((r) => r.name))).to.deep.equal([1, 2, 3, 4, 5].map((i) => [`host${i}.home.arpa.`]));
    const serials = changes.map((c) => c.serial);
    serials.forEach((s, i) => i > 0 && expect(s).to.equal(serials[i - 1]! + 1));
    // Durable and visible to another connection (the mail relay's, a backup's) when the replies came.
    const other = new Database(join(f.dir, DB_FILE), { readonly: true });
    try {
      expect(other.prepare("SELECT count(*) AS n FROM records WHERE name LIKE 'host%'").get()).to.deep.equal({ n: 5 });
    } finally {
      other.close();
    }
    // The DNS index serves them (stage 1 ran before the replies).
    expect(f.index.rrset('home.arpa.', 'host3.home.arpa.', 'A')).to.not.equal(undefined);
  });

  it('a failing write in a group fails alone; a conflict inside the group behaves as if the writes were sequential', async () => {
    await oneGroup([() => put('taken', ['192.0.2.1'])]);
    const seeded = f.group.counts.commits;
    commits = [];
    replies = 0;
    changes = [];
    const res = await oneGroup([
      () => send('POST', '/api/v1/records', { name: 'fresh', type: 'A', values: ['192.0.2.7'] }),
      // The same create again: the first one of this group already made it.
      () => send('POST', '/api/v1/records', { name: 'fresh', type: 'A', values: ['192.0.2.8'] }),
      // A CNAME beside data: refused by the store, inside the transaction.
      () => send('POST', '/api/v1/records', { name: 'taken', type: 'CNAME', values: ['fresh.home.arpa.'] }),
      // Deleting what is not there: 404 from inside the transaction.
      () => send('DELETE', '/api/v1/records/nothing.home.arpa./A'),
      () => put('other', ['192.0.2.9']),
    ]);
    expect(res.map((r) => r.statusCode)).to.deep.equal([201, 409, 409, 404, 201]);
    expect(res[1]!.json().error.code).to.equal('conflict');
    expect(res[2]!.json().error.code).to.equal('conflict');
    expect(res[3]!.json().error.code).to.equal('not_found');
    expect(f.group.counts.commits - seeded).to.equal(1);
    expect(commits).to.deep.equal([{ units: 2, repliesBefore: 0 }]);
    expect(f.records.get('fresh.home.arpa.', 'A')?.values).to.deep.equal(['192.0.2.7']);
    expect(f.records.get('taken.home.arpa.', 'CNAME')).to.equal(undefined);
    expect(f.records.get('other.home.arpa.', 'A')?.values).to.deep.equal(['192.0.2.9']);
    // Only the committed writes were announced, in order.
    expect(changes.map((c) => c.upserted.map((r) => r.name))).to.deep.equal([['fresh.home.arpa.'], ['other.home.arpa.']]);
  });

  it('keeps the order of the writes to one name: each reply shows its own write, the last one stays', async () => {
    const values = [1, 2, 3, 4].map((i) => `198.51.100.${i}`);
    const res = await oneGroup(values.map((v) => () => put('same', [v])));
    expect(res.map((r) => r.statusCode)).to.deep.equal([201, 200, 200, 200]);
    res.forEach((r, i) => expect(r.json().record.values).to.deep.equal([values[i]]));
    expect(f.records.get('same.home.arpa.', 'A')?.values).to.deep.equal([values[3]]);
    expect(changes.map((c) => c.upserted[0]!.values)).to.deep.equal(values.map((v) => [v]));
    expect(commits).to.deep.equal([{ units: 4, repliesBefore: 0 }]);
  });

  it('a dry run is not grouped and changes nothing; the legacy routes and routes join the group', async () => {
    const dry = await send('PUT', '/api/v1/records/dry.home.arpa./A?dry_run=true', { name: 'dry', type: 'A', values: ['192.0.2.1'] });
    expect(dry.statusCode).to.equal(200);
    expect(dry.json().dry_run).to.equal(true);
    expect(f.group.counts.commits).to.equal(0);
    replies = 0;
    const res = await oneGroup([
      () => send('POST', '/add-record', { service_name: 'svc', name: 'legacy', ip: '192.0.2.20', port: 8080, proxy_enabled: false }),
      () => send('POST', '/api/v1/routes', { hosts: ['app.home.arpa'], upstreams: ['192.0.2.30:80'] }),
    ]);
    expect(res.map((r) => r.statusCode)).to.deep.equal([201, 201]);
    expect(commits).to.deep.equal([{ units: 2, repliesBefore: 0 }]);
    expect(f.records.get('dry.home.arpa.', 'A')).to.equal(undefined);
  });

  it('a group waits out a zone import\'s turn on another connection, then commits (no 503)', async () => {
    const full = waitFor(1);
    const res = put('late', ['192.0.2.5']);
    await full;
    const release = await f.records.lock();
    const run = flush!;
    flush = null;
    run();
    expect(f.group.counts.commits, 'not while the other connection holds the turn').to.equal(0);
    expect(replies).to.equal(0);
    await release(null);
    const r = await res;
    expect(r.statusCode, r.body).to.equal(201);
    expect(commits).to.deep.equal([{ units: 1, repliesBefore: 0 }]);
    expect(f.records.get('late.home.arpa.', 'A')?.values).to.deep.equal(['192.0.2.5']);
  });

  it('when the group cannot commit (the database is locked), every write of it fails and nothing is stored or announced', async () => {
    // A first request records the token's use (an UPDATE of its own) before the lock is taken.
    expect((await f.app.inject({ method: 'GET', url: '/api/v1/zones', headers: f.auth })).statusCode).to.equal(200);
    f.db.pragma('busy_timeout = 0');
    const other = new Database(join(f.dir, DB_FILE));
    other.prepare('BEGIN IMMEDIATE').run();
    try {
      const res = await oneGroup([() => put('one', ['192.0.2.1']), () => put('two', ['192.0.2.2'])]);
      for (const r of res) expect(r.statusCode, r.body).to.be.at.least(500);
      expect(f.group.counts.commits).to.equal(0);
      expect(changes).to.deep.equal([]);
    } finally {
      other.prepare('ROLLBACK').run();
      other.close();
    }
    expect(f.records.get('one.home.arpa.', 'A')).to.equal(undefined);
  });

  it('a listener that throws after the commit does not fail the writes: each is answered as committed', async () => {
    f.records.onChange(() => {
      throw new Error('listener broke');
    });
    const res = await oneGroup([() => put('a1', ['192.0.2.1']), () => put('a2', ['192.0.2.2'])]);
    expect(res.map((r) => r.statusCode)).to.deep.equal([201, 201]);
    expect(changes.map((c) => c.upserted[0]!.name)).to.deep.equal(['a1.home.arpa.', 'a2.home.arpa.']);
  });
});
