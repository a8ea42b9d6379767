// dnsproxy backup (through the API, while serving) and dnsproxy restore (stack stopped), as a user runs them.
import { expect } from 'chai';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { cli, eachTempDir, startController, TOKEN, type Running } from '../helpers/controller.js';
import { tempDir } from '../helpers/tmp.js';

const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };

describe('e2e: dnsproxy backup / restore', function () {
  this.timeout(120_000);
  let tmp: ReturnType<typeof tempDir>;
  let c: Running | undefined;
  eachTempDir((t) => (tmp = t), () => c);

  const put = (name: string) => fetch(`${c!.apiUrl}/api/v1/records/${name}/A`, { method: 'PUT', headers: auth, body: JSON.stringify({ name, type: 'A', values: ['192.0.2.7'] }) });
  const names = async () => ((await (await fetch(`${c!.apiUrl}/api/v1/records`, { headers: auth })).json()) as { records: { name: string }[] }).records.map((r) => r.name).filter((n) => n.startsWith('b'));

  it('backs up while serving, refuses to overwrite or to restore under a running controller, restores once stopped', async () => {
    const data = join(tmp.dir, 'data');
    c = await startController(data);
    const env = { DNSPROXY_API_URL: c.apiUrl, DNSPROXY_TOKEN: TOKEN };
    expect((await put('before')).status).to.equal(201);
    const file = join(tmp.dir, 'b.sqlite');
    const made = await cli(['backup', file], env);
    expect(made.code, made.stderr).to.equal(0);
    expect(made.stdout).to.match(/^backup written to .*b\.sqlite \(\d+ bytes\); restore it with: dnsproxy restore /);
    expect(statSync(file).mode & 0o777).to.equal(0o600);
    const again = await cli(['backup', file], env);
    expect(again.code).to.equal(1);
    expect(again.stderr).to.include('exists: choose a new name');
    expect((await put('bafter')).status).to.equal(201);

    const busy = await cli(['restore', file, '--data-dir', data]);
    expect(busy.code).to.equal(1);
    expect(busy.stderr).to.match(/another controller \(pid \d+\) already runs on the data dir .*: stop it first \(dnsproxy stop\), then restore/);

    expect(await c.stop()).to.equal(0);
    const done = await cli(['restore', file, '--data-dir', data]);
    expect(done.code, done.stderr).to.equal(0);
    expect(done.stdout).to.match(/^restored .*b\.sqlite into .*data \(schema \d+\); the database it replaced is kept as .*dnsproxy\.sqlite\.before-restore-/);
    c = await startController(data);
    expect(await names()).to.deep.equal(['before.home.arpa.']);
    const kept = /kept as (\S+)\./.exec(done.stdout)?.[1];
    expect(kept && existsSync(kept)).to.equal(true);
  });

  it('a read or write token cannot take a backup (exit 1, the API says why)', async () => {
    c = await startController(join(tmp.dir, 'data'));
    const token = ((await (await fetch(`${c.apiUrl}/api/v1/tokens`, { method: 'POST', headers: auth, body: JSON.stringify({ name: 'w', scope: 'write' }) })).json()) as { token: string }).token;
    const res = await cli(['backup', join(tmp.dir, 'x.sqlite')], { DNSPROXY_API_URL: c.apiUrl, DNSPROXY_TOKEN: token });
    expect(res.code).to.equal(1);
    expect(res.stderr).to.include('needs a token with scope admin');
    expect(existsSync(join(tmp.dir, 'x.sqlite'))).to.equal(false);
  });
});
