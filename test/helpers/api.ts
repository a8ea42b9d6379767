// An API instance on a temp database, for inject() tests.
import type { FastifyInstance } from 'fastify';
import { build } from '../../src/api/app.js';
import { rollUp } from '../../src/api/health.js';
import { ZoneIndex } from '../../src/dns/index.js';
import { openDb, type Db } from '../../src/store/db.js';
import { RecordStore } from '../../src/store/records.js';
import { TokenStore } from '../../src/store/tokens.js';
import { setLogLevel } from '../../src/log/index.js';
import { tempDir } from './tmp.js';

// In-process tests assert on responses; request lines would only bury mocha's output.
setLogLevel('warn');

export const ZONES = ['home.arpa.', 'lab.example.'];
export const NODE_IP = '192.0.2.10';

export interface ApiFixture {
  app: FastifyInstance;
  db: Db;
  records: RecordStore;
  tokens: TokenStore;
  token: string;
  auth: { authorization: string };
  close: () => Promise<void>;
}

export async function apiFixture(): Promise<ApiFixture> {
  const tmp = tempDir();
  const db = openDb(tmp.dir);
  const records = new RecordStore(db, ZONES);
  const tokens = new TokenStore(db);
  const index = new ZoneIndex(ZONES.map((name) => ({ name, nameservers: [`ns1.${name}`], hostmaster: `hostmaster.${name}`, nodeIp: NODE_IP })));
  for (const zone of ZONES) index.load(zone, records.serial(zone), records.list({ zone }));
  records.onChange((c) => index.apply(c));
  const { token } = tokens.create('test');
  const app = await build({
    zones: ZONES,
    nodeIp: NODE_IP,
    records,
    tokens,
    servedRecords: (z) => index.servedRecords(z),
    health: () => rollUp({ store: { status: 'ok' }, dns: { status: 'ok' }, proxy: { status: 'disabled' }, mail: { status: 'disabled' } }),
    version: 'test',
  });
  return {
    app,
    db,
    records,
    tokens,
    token,
    auth: { authorization: `Bearer ${token}` },
    close: async () => {
      await app.close();
      db.close();
      tmp.cleanup();
    },
  };
}
