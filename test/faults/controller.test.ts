// Fault suite, controller side: real processes under the repo's supervisord.conf. Each test
// prints its figure; docs/reliability.md keeps the measured values.
import { expect } from 'chai';
import { hasCaddy } from '../helpers/caddy.js';
import { TOKEN } from '../helpers/controller.js';
import { addProxied, aliveInRun, describePids, dnsA, hasSupervisor, startStack, within, type Stack } from '../helpers/supervisor.js';

/** The bound: DNS answers again within this after supervisord restarts the controller. */
const DNS_BACK_LIMIT_MS = 2000;
const BURST = 400;
/** Requests in flight at once during the burst. */
const CONCURRENCY = 16;
/** Acknowledged adds after which the controller is killed. */
const KILL_AFTER_ACKS = 100;
/** DNS checks in flight at once: hundreds of simultaneous UDP queries can overflow a socket buffer. */
const DNS_PARALLEL = 25;
const DNS_TRIES = 3;
/** Per-query timeout while waiting for DNS to come back: the resolution of the measured figure. */
const PROBE_TIMEOUT_MS = 50;
/** A client's pause before it sends an add again after the API did not answer. */
const RETRY_MS = 50;
/** A port the records point at; nothing needs to listen there for DNS and the store. */
const UPSTREAM_PORT = 9;

/**
 * The A answer for each `<name>.home.arpa`, DNS_PARALLEL queries at a time; a query that times out
 * (UDP, 500 ms) is asked again up to DNS_TRIES times, so null means the server never answered.
 */
async function askAll(s: Stack, names: string[]): Promise<(string[] | null)[]> {
  const out: (string[] | null)[] = [];
  for (let i = 0; i < names.length; i += DNS_PARALLEL)
    out.push(
      ...(await Promise.all(
        names.slice(i, i + DNS_PARALLEL).map(async (n) => {
          for (let t = 0; t < DNS_TRIES; t++) {
            const a = await dnsA(s, `${n}.home.arpa`);
            if (a) return a;
          }
          return null;
        }),
      )),
    );
  return out;
}

describe('faults: the controller under supervisord', function () {
  this.timeout(90_000);
  let stack: Stack | undefined;

  before(function () {
    if (!hasSupervisor() || !hasCaddy()) this.skip();
  });
  beforeEach(async () => (stack = await startStack()));
  afterEach(async () => {
    await stack?.cleanup();
    stack = undefined;
  });

  it(`SIGKILL the controller mid-burst: every acknowledged record is there after the restart, DNS answers within 2 s of it`, async () => {
    const s = stack!;
    const pid = s.pid('controller')!;
    const acked: string[] = [];
    let killedAt = 0;
    let next = 0;
    // Each client retries its add while the API does not answer, as a real one would, so the
    // burst runs on through the restart and the acknowledgements come from both processes.
    const worker = async () => {
      while (next < BURST) {
        const name = `b${next++}`;
        for (let status = 0; status === 0; ) {
          status = await addProxied(s, name, UPSTREAM_PORT);
          if (status >= 200 && status < 300) acked.push(name);
          else if (status === 0) await new Promise((r) => setTimeout(r, RETRY_MS));
          else throw new Error(`add ${name}: HTTP ${status}`);
        }
        if (!killedAt && acked.length >= KILL_AFTER_ACKS) {
          killedAt = Date.now();
          process.kill(pid, 'SIGKILL');
        }
      }
    };
    const burst = Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const respawn = await s.respawn('controller', pid);
    // Acknowledged from here on can only come from the new process.
    const ackedBeforeRestart = acked.length;
    const probe = acked[0]!;
    // A query to a port nobody listens on just times out (UDP): short timeouts keep the figure sharp.
    await within(10_000, async () => (await dnsA(s, `${probe}.home.arpa`, PROBE_TIMEOUT_MS))?.[0] === '127.0.0.1');
    const dnsBackMs = Date.now() - respawn.at;
    await burst;
    const ackedAfterRestart = acked.length - ackedBeforeRestart;

    // Every 2xx is in the store (API) and in DNS, whichever controller process gave it.
    const listed = (await (await fetch(`${s.apiUrl}/api/v1/records?type=A`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { records: { name: string }[] };
    const names = new Set(listed.records.map((r) => r.name.replace(/\.home\.arpa\.?$/, '')));
    const lostInStore = acked.filter((n) => !names.has(n));
    const answers = await askAll(s, acked);
    const lostInDns = acked.filter((_, i) => answers[i]?.[0] !== '127.0.0.1').map((n) => `${n}: ${JSON.stringify(answers[acked.indexOf(n)])}`);
    console.log(
      `      ${acked.length}/${BURST} adds acknowledged (${ackedAfterRestart} by the restarted process); controller restarted ${respawn.at - killedAt} ms after SIGKILL; DNS answered ${dnsBackMs} ms after the restart; lost: ${lostInStore.length} (store), ${lostInDns.length} (DNS)`,
    );
    expect(acked.length, 'with retries every add is acknowledged in the end').to.equal(BURST);
    expect(ackedAfterRestart).to.be.greaterThan(0);
    expect(lostInStore, 'acknowledged but missing from the store').to.deep.equal([]);
    expect(lostInDns, 'acknowledged but not answered by DNS (null: no reply at all)').to.deep.equal([]);
    expect(dnsBackMs).to.be.at.most(DNS_BACK_LIMIT_MS);
  });

  it('supervisorctl stop all: every program exits on SIGTERM (status 0), nothing of theirs is left, supervisord then shuts down cleanly', async () => {
    const s = stack!;
    const pids = [s.pid('caddy')!, s.pid('controller')!, s.pid('mail')!];
    const started = Date.now();
    const stop = await s.ctl('stop', 'all');
    const stopMs = Date.now() - started;
    expect(stop.code, stop.stdout + stop.stderr).to.equal(0);
    expect(stop.stdout.split('\n').filter(Boolean).sort()).to.deep.equal(['caddy: stopped', 'controller: stopped', 'mail: stopped']);
    expect(await s.states()).to.deep.equal({ caddy: 'STOPPED', controller: 'STOPPED', mail: 'STOPPED' });
    const stops = s.events().filter((e) => e.kind === 'stopped').map((e) => `${e.name} ${e.detail}`);
    expect(stops.sort()).to.deep.equal(['caddy (exit status 0)', 'controller (exit status 0)', 'mail (exit status 0)']);
    expect(pids.filter((p) => aliveInRun(s, p)), 'program processes still alive').to.deep.equal([]);
    expect(await dnsA(s, 'x.home.arpa'), 'DNS still answering').to.equal(null);
    expect(await fetch(`${s.apiUrl}/health`).then(() => 'answered', () => 'refused')).to.equal('refused');

    const shutdown = await s.ctl('shutdown');
    expect(shutdown.code).to.equal(0);
    expect(await s.exited()).to.equal(0);
    expect(describePids(s.leftovers()), 'processes of the run after shutdown').to.deep.equal([]);
    console.log(`      supervisorctl stop all took ${stopMs} ms; no process left`);
  });
});
