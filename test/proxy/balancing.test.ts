// Balancing (issue 15, item 2): the model's checks and what render() makes of them (no Caddy).
import { expect } from 'chai';
import { routeBody } from '../../src/model/route.js';
import { balancingIsDefault, balancingSchema, durationMs } from '../../src/model/route-balancing.js';
import { proxySchema } from '../../src/model/record.js';
import { splitRoutes } from '../../src/proxy/desired.js';
import { render } from '../../src/proxy/render.js';
import type { DesiredRoute } from '../../src/proxy/types.js';
import { route } from './fixture.js';

const settings = { httpPort: 8080, httpsPort: 8443, listenIp: '127.0.0.1', admin: '127.0.0.1:2999' };
const handlerOf = (routes: DesiredRoute[]): Record<string, unknown> => {
  const config = render({ settings, routes }).config as { apps: { http: { servers: Record<string, { routes: { '@id': string; handle: Record<string, unknown>[] }[] }> } } };
  const leaf = config.apps.http.servers['dnsproxy-http']!.routes.find((r) => r['@id'] === `dnsproxy-route-${routes[0]!.id}`)!;
  return leaf.handle[0]!;
};

describe('model/route-balancing', () => {
  it('accepts every policy and fills in round_robin', () => {
    for (const policy of ['round_robin', 'random', 'ip_hash', 'least_conn', 'first', 'least_latency']) expect(balancingSchema.parse({ policy })).to.deep.equal({ policy });
    expect(balancingSchema.parse({})).to.deep.equal({ policy: 'round_robin' });
  });

  it('refuses an unknown policy, a bad duration, retries out of range, and try_duration with retries 0, naming the field', () => {
    const fields = (body: unknown) => {
      const r = routeBody.safeParse({ hosts: ['a.home.arpa'], upstreams: ['192.0.2.1:80'], balancing: body });
      expect(r.success).to.equal(false);
      return r.error!.issues.map((i) => i.path.join('.'));
    };
    expect(fields({ policy: 'least_latency_magic' })).to.deep.equal(['balancing.policy']);
    expect(fields({ try_duration: '2 seconds' })).to.deep.equal(['balancing.try_duration']);
    expect(fields({ try_duration: '61s' })).to.deep.equal(['balancing.try_duration']);
    expect(fields({ retries: -1 })).to.deep.equal(['balancing.retries']);
    expect(fields({ retries: 11 })).to.deep.equal(['balancing.retries']);
    expect(fields({ retries: 0, try_duration: '1s' })).to.deep.equal(['balancing.try_duration']);
    expect(fields({ policy: 'first', extra: 1 })).to.deep.equal(['balancing']);
  });

  it('is a field of a proxied record too', () => {
    expect(proxySchema.parse({ enabled: true, upstreams: ['192.0.2.1:80'], balancing: { policy: 'first' } }).balancing).to.deep.equal({ policy: 'first' });
    expect(proxySchema.safeParse({ enabled: true, upstreams: ['192.0.2.1:80'], balancing: { policy: 'nope' } }).success).to.equal(false);
  });

  it('durations in ms, s and m', () => {
    expect([durationMs('250ms'), durationMs('2s'), durationMs('1m')]).to.deep.equal([250, 2000, 60_000]);
    expect(() => durationMs('2h')).to.throw('not a duration');
  });

  it('default balancing is round robin with no retry settings', () => {
    expect(balancingIsDefault(undefined)).to.equal(true);
    expect(balancingIsDefault({ policy: 'round_robin' })).to.equal(true);
    expect(balancingIsDefault({ policy: 'round_robin', retries: 1 })).to.equal(false);
    expect(balancingIsDefault({ policy: 'first' })).to.equal(false);
  });
});

describe('proxy/balancing render', () => {
  const ups = ['192.0.2.3:80', '192.0.2.1:80', '192.0.2.2:80'];

  it('a route without balancing renders as before: round robin, try_duration 1s', () => {
    expect(handlerOf([route('api:x', ['x.test'], ups)]).load_balancing).to.deep.equal({ selection_policy: { policy: 'round_robin' }, try_duration: '1s' });
    expect(handlerOf([route('api:x', ['x.test'], ['192.0.2.1:80'])]).load_balancing).to.equal(undefined);
  });

  it('renders the policy, retries and try_duration, retrying only GET/HEAD/OPTIONS after a connection', () => {
    const h = handlerOf([route('api:x', ['x.test'], ups, { balancing: { policy: 'ip_hash', retries: 3, try_duration: '5s' } })]);
    expect(JSON.stringify(h.load_balancing)).to.equal(
      JSON.stringify({ retries: 3, retry_match: [{ method: ['GET', 'HEAD', 'OPTIONS'] }], selection_policy: { policy: 'ip_hash' }, try_duration: '5s' }),
    );
    expect(handlerOf([route('api:x', ['x.test'], ['192.0.2.1:80'], { balancing: { policy: 'random' } })]).load_balancing).to.deep.equal({
      retry_match: [{ method: ['GET', 'HEAD', 'OPTIONS'] }],
      selection_policy: { policy: 'random' },
      try_duration: '1s',
    });
    expect(handlerOf([route('api:x', ['x.test'], ups, { balancing: { policy: 'least_conn', retries: 0 } })]).load_balancing).to.deep.equal({ selection_policy: { policy: 'least_conn' } });
  });

  it('first keeps the upstreams in the order written; other policies sort them (same config in any order)', () => {
    const dials = (h: Record<string, unknown>) => (h.upstreams as { dial: string }[]).map((u) => u.dial);
    expect(dials(handlerOf([route('api:x', ['x.test'], [...ups, ups[0]!], { balancing: { policy: 'first' } })]))).to.deep.equal(ups);
    expect(dials(handlerOf([route('api:x', ['x.test'], ups, { balancing: { policy: 'random' } })]))).to.deep.equal([...ups].sort());
    const one = render({ settings, routes: [route('api:x', ['x.test'], ups, { balancing: { policy: 'random' } })] }).hash;
    const two = render({ settings, routes: [route('api:x', ['x.test'], [...ups].reverse(), { balancing: { policy: 'random' } })] }).hash;
    expect(one).to.equal(two);
  });

  it('a non-default balancing makes a proxied record explicit; the default keeps it plain', () => {
    const rec = (balancing?: DesiredRoute['balancing']) => route('record:a.home.arpa', ['a.home.arpa'], ['192.0.2.1:80', '192.0.2.2:80'], balancing ? { balancing } : {});
    expect(splitRoutes([rec()], true).dynamic).to.have.length(1);
    expect(splitRoutes([rec({ policy: 'round_robin' })], true).dynamic).to.have.length(1);
    expect(splitRoutes([rec({ policy: 'first' })], true).explicit).to.have.length(1);
    expect(splitRoutes([rec({ policy: 'round_robin', retries: 2 })], true).explicit).to.have.length(1);
  });
});

describe('cli: add-route balancing options', () => {
  it('--policy / --try-duration / --retries become the balancing sub-object; none: no balancing', async () => {
    const { balancingBody } = await import('../../src/cli/routes.js');
    expect(balancingBody({})).to.deep.equal({});
    expect(balancingBody({ policy: 'first', tryDuration: '2s', retries: 0 })).to.deep.equal({ balancing: { policy: 'first', try_duration: '2s', retries: 0 } });
  });
});

describe('proxy/backends render', () => {
  it('lists a weighted dial that many times; weights make a record explicit; dead ones are not built', async () => {
    const { buildDesired } = await import('../../src/proxy/desired.js');
    const base = { id: 'api:w', hosts: ['w.test'], path: null, upstreams: ['192.0.2.1:80', '192.0.2.2:80'], tls: 'off' as const, health_path: null, created_at: '', updated_at: '' };
    const built = buildDesired([], [{ ...base, backends: { '192.0.2.2:80': { weight: 3 }, '192.0.2.1:80': {} } }], () => undefined).routes;
    expect(built[0]!.weights).to.deep.equal({ '192.0.2.2:80': 3 });
    const dials = (handlerOf(built).upstreams as { dial: string }[]).map((u) => u.dial);
    expect(dials).to.deep.equal(['192.0.2.1:80', '192.0.2.2:80', '192.0.2.2:80', '192.0.2.2:80']);
    // A name in our zones: each of its addresses gets the weight.
    const named = buildDesired([], [{ ...base, upstreams: ['nas.home.arpa:80'], backends: { 'nas.home.arpa:80': { weight: 2 } } }], (h) => (h === 'nas.home.arpa' ? ['192.0.2.7', '192.0.2.8'] : undefined)).routes;
    expect(named[0]!.weights).to.deep.equal({ '192.0.2.7:80': 2, '192.0.2.8:80': 2 });
    const dead = buildDesired([], [{ ...base, backends: { '192.0.2.1:80': { dead: true } } }], () => undefined);
    expect(dead.routes[0]!.upstreams).to.deep.equal(['192.0.2.2:80']);
    const allDead = buildDesired([], [{ ...base, backends: { '192.0.2.1:80': { dead: true }, '192.0.2.2:80': { dead: true } } }], () => undefined);
    expect(allDead.routes).to.deep.equal([]);
    expect(allDead.errors.get('api:w')).to.include('every backend is marked dead');
    const rec = route('record:a.home.arpa', ['a.home.arpa'], ['192.0.2.1:80', '192.0.2.2:80'], { weights: { '192.0.2.1:80': 2 } });
    expect(splitRoutes([rec], true).explicit).to.have.length(1);
  });
});
