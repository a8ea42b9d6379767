// The MTA-STS routes source (src/mail/domains/mta-sts.ts) that the controller hands to the proxy:
// one static route per mail domain, the same object while nothing changed (no Caddy reload), a new
// one when the policy changes, none once the domain is removed; ProxyState adds them to its build.
import { expect } from 'chai';
import { mtaStsRoutes, MTA_STS_PATH } from '../../src/mail/domains/mta-sts.js';
import { apiFixture, MAIL_HOSTNAME, type ApiFixture } from '../helpers/api.js';

const DOMAIN = 'lab.example';

describe('mail: MTA-STS policy routes', () => {
  let f: ApiFixture;
  beforeEach(async () => (f = await apiFixture()));
  afterEach(async () => f.close());
  const put = (payload: object) => f.app.inject({ method: 'PUT', url: `/api/v1/mail/domains/${DOMAIN}`, headers: f.auth, payload });

  it('one static route per mail domain, kept while unchanged, replaced on a mode change, gone on removal', async () => {
    const source = mtaStsRoutes(f.db, { hostname: MAIL_HOSTNAME, tls: 'internal' });
    expect(source()).to.deep.equal([]);
    expect((await put({})).statusCode).to.equal(201);
    const [first] = source();
    expect(first).to.deep.include({ id: `mail:mta-sts:${DOMAIN}`, hosts: [`mta-sts.${DOMAIN}`], path: MTA_STS_PATH, upstreams: [], tls: 'internal', health_path: null });
    expect(first?.respond).to.deep.equal({ status: 200, content_type: 'text/plain; charset=utf-8', body: `version: STSv1\r\nmode: testing\r\nmx: ${MAIL_HOSTNAME}\r\nmax_age: 604800\r\n` });
    expect(source()[0]).to.equal(first); // the same object: the reconciler sees no change
    f.proxy.useStatics(source);
    expect(f.proxy.desired().routes.map((r) => r.id)).to.include(`mail:mta-sts:${DOMAIN}`);

    expect((await put({ mta_sts_mode: 'enforce' })).statusCode).to.equal(200);
    const [second] = source();
    expect(second).not.to.equal(first);
    expect(second?.respond?.body).to.include('mode: enforce\r\n');

    expect((await f.app.inject({ method: 'DELETE', url: `/api/v1/mail/domains/${DOMAIN}`, headers: { authorization: f.auth.authorization } })).statusCode).to.equal(200);
    expect(source()).to.deep.equal([]);
    await f.pipeline.settled();
    expect(f.proxy.desired().routes.map((r) => r.id)).not.to.include(`mail:mta-sts:${DOMAIN}`);
  });
});
