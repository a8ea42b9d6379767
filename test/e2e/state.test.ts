// dnsproxy export / apply and serve --watch, as a user runs them: the real binary, its DNS asked
// with dns2, the state file and the config file edited while it serves. Each step waits for the
// controller's own log line (the event), never for a fixed time.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import DNS from 'dns2';
import { cli, eachTempDir, startController, TOKEN, type Running } from '../helpers/controller.js';
import { tempDir } from '../helpers/tmp.js';

const stateText = (ip: string) => `version: 1\nrecords:\n  - name: svc.home.arpa.\n    type: A\n    values: [${ip}]\n`;

/** Resolves once the controller's output holds `count` lines with `text` (a test's timeout is the only bound). */
function logged(c: Running, text: string, count: number): Promise<void> {
  const seen = () => c.output().split('\n').filter((l) => l.includes(text)).length >= count;
  return new Promise((resolve) => {
    if (seen()) return resolve();
    const on = () => {
      if (!seen()) return;
      c.proc.stdout?.off('data', on);
      resolve();
    };
    c.proc.stdout?.on('data', on);
  });
}

describe('e2e: desired state as code', function () {
  this.timeout(120_000);
  let tmp: ReturnType<typeof tempDir>;
  let c: Running | undefined;
  eachTempDir((t) => (tmp = t), () => c, 'stop');

  it('serve --watch applies good saves, refuses a bad one while DNS keeps the old answer; the config file is watched; export/apply through the CLI', async () => {
    const file = join(tmp.dir, 'state.yaml');
    const config = join(tmp.dir, 'config.yaml');
    writeFileSync(file, stateText('192.0.2.1'));
    writeFileSync(config, 'log_level: info\n');
    // The log level from the file alone (the helper sets it in the environment, which would win).
    c = await startController(join(tmp.dir, 'data'), { DNSPROXY_STATE_FILE: file, DNSPROXY_CONFIG: config, DNSPROXY_LOG_LEVEL: '' });
    const resolve = DNS.UDPClient({ dns: '127.0.0.1', port: c.dnsPort });
    const answer = async () => (await resolve('svc.home.arpa', 'A')).answers.map((x: { address?: string }) => x.address);
    const health = async () => ((await (await fetch(`${c!.apiUrl}/health`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { components: Record<string, { status: string; detail?: string }> }).components.state_file;
    await logged(c, '"state file applied"', 1);
    expect(await answer()).to.deep.equal(['192.0.2.1']);
    expect((await health())?.status).to.equal('ok');

    writeFileSync(file, stateText('192.0.2.250').replace('192.0.2.250', '192.0.2.x'));
    await logged(c, '"state file refused; the last good state keeps serving"', 1);
    expect(await answer()).to.deep.equal(['192.0.2.1']);
    const bad = await health();
    expect(bad?.status).to.equal('degraded');
    expect(bad?.detail).to.include('records.0.values.0');

    writeFileSync(file, stateText('192.0.2.2'));
    await logged(c, '"state file applied"', 2);
    expect(await answer()).to.deep.equal(['192.0.2.2']);
    expect((await health())?.status).to.equal('ok');

    // The config file: the log level changes at once (a DNS query is then logged), another setting says it needs a restart.
    writeFileSync(config, 'log_level: debug\nmail_workers: 8\n');
    await logged(c, '"config file changed: these settings take effect at the next restart"', 1);
    const lines = c.output().split('\n').filter((l) => l.includes('"config file changed'));
    expect(lines.map((l) => (JSON.parse(l) as { settings: string[] }).settings)).to.deep.equal([['log_level'], ['mail_workers']]);
    // The DNS server reads the level once a second: ask until a query is logged at debug, each try after the next output.
    while (!c.output().includes('"level":"debug","message":"query"')) {
      await answer();
      await new Promise((resolve) => c!.proc.stdout?.once('data', resolve));
    }

    // A config file that no longer loads changes nothing: one line names the field.
    writeFileSync(config, 'log_level: loud\n');
    await logged(c, '"config file refused; the running settings stay"', 1);
    expect(c.output()).to.include('log_level');

    // export > file; apply -f file: nothing to change; --dry-run of a change shows it and changes nothing.
    const env = { DNSPROXY_API_URL: c.apiUrl, DNSPROXY_TOKEN: TOKEN };
    const exported = await cli(['export'], env);
    expect(exported.code, exported.stderr).to.equal(0);
    expect(exported.stdout).to.match(/^version: 1\n/).and.include('svc.home.arpa.');
    // The CLI writes the YAML from the JSON export with the API's own writer: the same bytes as GET /api/v1/state.
    expect(exported.stdout).to.equal(await (await fetch(`${c.apiUrl}/api/v1/state`, { headers: { authorization: `Bearer ${TOKEN}` } })).text());
    // --caddyfile still gives the routes as a Caddyfile (what export printed before the state file).
    const caddyfile = await cli(['export', '--caddyfile'], env);
    expect(caddyfile.code, caddyfile.stderr).to.equal(0);
    expect(caddyfile.stdout).to.not.include('version: 1');
    const copy = join(tmp.dir, 'exported.yaml');
    writeFileSync(copy, exported.stdout);
    const same = await cli(['apply', '-f', copy], env);
    expect(same.code, same.stderr).to.equal(0);
    expect(same.stdout.trim()).to.equal('nothing to change');
    writeFileSync(copy, exported.stdout.replace('192.0.2.2', '192.0.2.3'));
    const dry = await cli(['apply', '-f', copy, '--dry-run'], env);
    expect(dry.code, dry.stderr).to.equal(0);
    expect(dry.stdout).to.equal('dry run, nothing applied:\n~ records svc.home.arpa. A\n');
    expect(await answer()).to.deep.equal(['192.0.2.2']);
    const wrong = await cli(['apply', '-f', copy], { ...env, DNSPROXY_TOKEN: 'nope-not-a-token-000000000' });
    expect(wrong.code).to.equal(1);
    writeFileSync(copy, 'version: 1\nrecords: [\n');
    const syntax = await cli(['apply', '-f', copy], env);
    expect(syntax.code).to.equal(1);
    expect(syntax.stderr).to.match(/exported\.yaml: the state file is not valid YAML: line \d+, column \d+/);
    writeFileSync(copy, 'version: 3\n');
    const version = await cli(['apply', '-f', copy], env);
    expect(version.code).to.equal(1);
    expect(version.stderr).to.include('version').and.include('HTTP 400');
  });
});
