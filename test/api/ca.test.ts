// GET /api/v1/ca without a Caddy admin API to ask (the API fixture has none): 503 with the reason,
// never a 500. The real path (Caddy answering) is test/e2e/ca.test.ts.
import { expect } from 'chai';
import { apiFixture, type ApiFixture } from '../helpers/api.js';

describe('api: /api/v1/ca', () => {
  let f: ApiFixture;
  beforeEach(async () => (f = await apiFixture()));
  afterEach(async () => f.close());

  it('503 unavailable naming why when there is no Caddy admin API; 401 without a token', async () => {
    const res = await f.app.inject({ method: 'GET', url: '/api/v1/ca', headers: f.auth });
    expect(res.statusCode).to.equal(503);
    expect(res.json()).to.deep.equal({ error: { code: 'unavailable', message: 'this controller has no Caddy admin API to read the internal CA from' } });
    expect((await f.app.inject({ method: 'GET', url: '/api/v1/ca' })).statusCode).to.equal(401);
  });
});
