// `dnsproxy status` without a running stack: parsing supervisorctl's output, the exit rule, and
// the one-line answers when supervisorctl is missing or cannot connect. The running stack is
// covered by supervisor.test.ts and the fault suite.
import { expect } from 'chai';
import { parseSupervisorStatus, stackOk, statusText, type HealthStatus, type SupervisorStatus } from '../../src/cli/status.js';
import { freePort } from '../helpers/caddy.js';
import { cli } from '../helpers/controller.js';
import { CONF, hasSupervisor } from '../helpers/supervisor.js';
import { tempDir } from '../helpers/tmp.js';

describe('deploy: dnsproxy status', () => {
  it('parses supervisorctl status lines and skips anything else', () => {
    const text = [
      'caddy                            RUNNING   pid 26458, uptime 0:00:03',
      'controller                       FATAL     Exited too quickly (process log may have details)',
      'mail:relay                       BACKOFF   Exited too quickly (process log may have details)',
      'worker                           STOPPED   Not started',
      'unix:///tmp/x/supervisor.sock no such file',
      '',
    ].join('\n');
    expect(parseSupervisorStatus(text)).to.deep.equal([
      { name: 'caddy', state: 'RUNNING', detail: 'pid 26458, uptime 0:00:03' },
      { name: 'controller', state: 'FATAL', detail: 'Exited too quickly (process log may have details)' },
      { name: 'mail:relay', state: 'BACKOFF', detail: 'Exited too quickly (process log may have details)' },
      { name: 'worker', state: 'STOPPED', detail: 'Not started' },
    ]);
  });

  const sup = (...states: string[]): SupervisorStatus => ({ conf: 'c', error: null, programs: states.map((state, i) => ({ name: `p${i}`, state, detail: '' })) });
  const health = (status: HealthStatus['status']): HealthStatus => ({ url: 'u', status, components: {}, version: null, node: null, error: null });
  const cases: [string, SupervisorStatus, HealthStatus, boolean][] = [
    ['all RUNNING, health ok', sup('RUNNING', 'RUNNING'), health('ok'), true],
    ['all RUNNING, health degraded', sup('RUNNING', 'RUNNING'), health('degraded'), true],
    ['all RUNNING, health down', sup('RUNNING', 'RUNNING'), health('down'), false],
    ['all RUNNING, API unreachable', sup('RUNNING', 'RUNNING'), health('unreachable'), false],
    ['one STOPPED', sup('RUNNING', 'STOPPED'), health('ok'), false],
    ['one STARTING', sup('STARTING', 'RUNNING'), health('ok'), false],
    ['no programs', sup(), health('ok'), false],
    ['supervisord unreachable', { conf: 'c', error: 'no answer', programs: [] }, health('ok'), false],
  ];
  for (const [what, s, h, ok] of cases) it(`exit ${ok ? 0 : 1} when ${what}`, () => expect(stackOk({ supervisor: s, health: h })).to.equal(ok));

  it('names the controller\'s dnsproxy version and Node.js runtime next to its health, when /health gives them', () => {
    const supervisor = sup('RUNNING');
    const said = statusText({ ok: true, supervisor, health: { ...health('ok'), url: 'http://api/health', version: '0.1.0', node: 'v24.22.3' } });
    expect(said).to.match(/^health: ok \(http:\/\/api\/health\), dnsproxy 0\.1\.0 on Node\.js v24\.22\.3$/m);
    // An older controller says neither: the line stays as it was.
    expect(statusText({ ok: true, supervisor, health: { ...health('ok'), url: 'http://api/health' } })).to.match(/^health: ok \(http:\/\/api\/health\)$/m);
  });

  it('says in one line when supervisord does not answer and when the API does not, and exits 1', async function () {
    if (!hasSupervisor()) return this.skip();
    const tmp = tempDir();
    try {
      const port = await freePort();
      const res = await cli(['--api-url', `http://127.0.0.1:${port}`, 'status', '--supervisor-conf', CONF], { DNSPROXY_RUN_DIR: tmp.dir });
      expect(res.code).to.equal(1);
      expect(res.stdout.trim().split('\n').filter(Boolean)).to.deep.equal([
        `supervisord: no answer from supervisorctl: unix://${tmp.dir}/supervisor.sock no such file`,
        `health: cannot reach http://127.0.0.1:${port}/health: ECONNREFUSED`,
      ]);
      const json = JSON.parse((await cli(['--api-url', `http://127.0.0.1:${port}`, 'status', '--json', '--supervisor-conf', CONF], { DNSPROXY_RUN_DIR: tmp.dir })).stdout);
      expect(json).to.deep.include({ ok: false });
      expect(json.supervisor.programs).to.deep.equal([]);
      expect(json.health).to.include({ status: 'unreachable', components: null });
    } finally {
      tmp.cleanup();
    }
  });

  it('says so when supervisorctl is not installed, or the config file is missing', async () => {
    const port = await freePort();
    // The CLI runs as `node bin/dnsproxy` by absolute path, so an empty PATH hides only supervisorctl.
    const empty = tempDir();
    const noTools = await cli(['--api-url', `http://127.0.0.1:${port}`, 'status', '--supervisor-conf', CONF], { PATH: empty.dir });
    empty.cleanup();
    expect(noTools.code).to.equal(1);
    expect(noTools.stdout).to.include('supervisord: supervisorctl not found: install supervisor (apt-get install supervisor)');
    const noConf = await cli(['--api-url', `http://127.0.0.1:${port}`, 'status'], { DNSPROXY_SUPERVISOR_CONF: '/nonexistent/supervisord.conf' });
    expect(noConf.stdout).to.include('supervisord: no supervisord config at /nonexistent/supervisord.conf (use --supervisor-conf or DNSPROXY_SUPERVISOR_CONF)');
  });
});
