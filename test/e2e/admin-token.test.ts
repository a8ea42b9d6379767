// DNSPROXY_ADMIN_TOKEN through real `dnsproxy serve` restarts.
import { expect } from 'chai';
import { startController, TOKEN, type Running } from '../helpers/controller.js';
import { tempDir } from '../helpers/tmp.js';

describe('e2e: DNSPROXY_ADMIN_TOKEN', function () {
  this.timeout(60_000);
  const tmp = tempDir();
  let c: Running | undefined;
  afterEach(async () => {
    await c?.stop();
    c = undefined;
  });
  after(() => tmp.cleanup());

  const api = (token: string, method = 'GET', path = '/api/v1/tokens', body?: unknown) =>
    fetch(`${c!.apiUrl}${path}`, { method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });

  it('refuses a value shorter than 24 characters at start: exit 2, one line saying why', async () => {
    try {
      c = await startController(tmp.dir, { DNSPROXY_ADMIN_TOKEN: 'short-token' });
      expect.fail('should not start');
    } catch (e) {
      const msg = (e as Error).message;
      expect(msg).to.match(/exited \(2\)/);
      expect(msg).to.include('dnsproxy: config: DNSPROXY_ADMIN_TOKEN is 11 characters; use at least 24');
      expect(msg).not.to.include('short-token');
    }
  });

  it('a revoked bootstrap token stays revoked after a restart; a changed value replaces it', async () => {
    c = await startController(tmp.dir);
    const other = (await (await api(TOKEN, 'POST', '/api/v1/tokens', { name: 'ops', scope: 'admin' })).json()) as { token: string };
    const list = (await (await api(other.token)).json()) as { tokens: { id: string; name: string }[] };
    const boot = list.tokens.find((t) => t.name === 'bootstrap')!;
    expect((await api(other.token, 'DELETE', `/api/v1/tokens/${boot.id}`)).status).to.equal(204);
    await c.stop();
    c = await startController(tmp.dir);
    expect((await api(TOKEN)).status).to.equal(401);
    await c.stop();
    const next = `${TOKEN}-rotated`;
    c = await startController(tmp.dir, { DNSPROXY_ADMIN_TOKEN: next });
    expect((await api(next)).status).to.equal(200);
    await c.stop();
    c = await startController(tmp.dir, { DNSPROXY_ADMIN_TOKEN: `${TOKEN}-rotated-again` });
    expect((await api(next)).status).to.equal(401);
    const names = ((await (await api(other.token)).json()) as { tokens: { name: string }[] }).tokens.map((t) => t.name).sort();
    expect(names).to.deep.equal(['bootstrap', 'ops']);
  });
});
