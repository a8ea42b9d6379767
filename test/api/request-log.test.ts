// The API's request lines: writes and refusals at info, successful reads only at debug (a line per
// read was ~8 % of the controller's time at 1,000 reads a second, bench/api).
import { expect } from 'chai';
import { setLogLevel } from '../../src/log/index.js';
import { apiFixture, type ApiFixture } from '../helpers/api.js';

describe('api: request log lines', () => {
  let f: ApiFixture;
  let lines: { message?: string; method?: string; route?: string; status?: number; level?: string }[];
  let write: typeof process.stdout.write;
  beforeEach(async () => {
    f = await apiFixture();
    lines = [];
    write = process.stdout.write.bind(process.stdout);
    // winston's Console transport writes JSON lines to stdout.
    const capture = (chunk: string | Uint8Array): boolean => {
      for (const l of String(chunk).split('\n')) if (l.startsWith('{')) lines.push(JSON.parse(l));
      return true;
    };
    process.stdout.write = capture;
  });
  afterEach(async () => {
    process.stdout.write = write;
    setLogLevel('warn');
    await f.close();
  });
  const requests = () => lines.filter((l) => l.message === 'request').map((l) => `${l.level} ${l.method} ${l.route} ${l.status}`);
  const get = (url: string) => f.app.inject({ method: 'GET', url, headers: f.auth });

  it('at info: a write and a refused read are logged, a successful read is not', async () => {
    setLogLevel('info');
    expect((await f.app.inject({ method: 'PUT', url: '/api/v1/records/www.home.arpa./A', headers: f.auth, payload: { name: 'www', type: 'A', values: ['192.0.2.1'] } })).statusCode).to.equal(201);
    expect((await get('/api/v1/records/www.home.arpa./A')).statusCode).to.equal(200);
    expect((await get('/list-records')).statusCode).to.equal(200);
    expect((await get('/api/v1/records/nothing.home.arpa./A')).statusCode).to.equal(404);
    expect(requests()).to.deep.equal(['info PUT /api/v1/records/:name/:type 201', 'info GET /api/v1/records/:name/:type 404']);
  });

  it('at debug: every successful read is logged too, the probes still not', async () => {
    setLogLevel('debug');
    expect((await get('/api/v1/zones')).statusCode).to.equal(200);
    expect((await f.app.inject({ method: 'GET', url: '/health' })).statusCode).to.equal(200);
    expect(requests()).to.deep.equal(['debug GET /api/v1/zones 200']);
  });
});
