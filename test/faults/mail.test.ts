// Fault suite, mail side: the relay as the `mail` program of the repo's supervisord.conf, with
// messages queued for a provider that is down when the relay is SIGKILLed. Prints its figure;
// docs/reliability.md keeps the measured values.
import { expect } from 'chai';
import { hasCaddy } from '../helpers/caddy.js';
import { TOKEN } from '../helpers/controller.js';
import { copiesById, queueCounts, relayCert, submitter } from '../helpers/mail.js';
import { hasSupervisor, startStack, within, type Stack } from '../helpers/supervisor.js';
import { ACCOUNT, deadPort, sink, type Sink } from '../mail/helpers.js';

const QUEUED = 500;
/** nodemailer clients submitting at once, each over its own pooled connection. */
const CLIENTS = 10;
/**
 * Retry delays for the run (defaults: 1 min doubling to 1 h): short, so the figure shows the
 * relay's restart and delivery rather than a backoff wait. Set through the environment, which
 * supervisord passes on to its programs.
 */
const RETRY = { DNSPROXY_MAIL_RETRY_BASE_MS: '500', DNSPROXY_MAIL_RETRY_MAX_MS: '2000' };
/** After the provider comes up every message must be there within this (one retry period plus the deliveries). */
const DELIVERY_LIMIT_MS = 20_000;
const AUTH = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };

/** One admin API call as the CLI makes it; throws on a non-2xx answer. */
async function api(s: Stack, method: string, path: string, body: unknown): Promise<void> {
  const res = await fetch(`${s.apiUrl}${path}`, { method, headers: AUTH, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
}

describe('faults: the mail relay under supervisord', function () {
  this.timeout(120_000);
  let stack: Stack | undefined;
  let provider: Sink | undefined;

  before(function () {
    if (!hasSupervisor() || !hasCaddy()) this.skip();
  });
  afterEach(async () => {
    await stack?.cleanup();
    await provider?.close();
    stack = provider = undefined;
  });

  it(`SIGKILL the relay with ${QUEUED} messages queued for a provider that is down: after the restart and the provider's return all are delivered, none lost`, async () => {
    const s = (stack = await startStack({ env: { DNSPROXY_MAIL_HOSTNAME: 'relay.example.net', ...RETRY } }));
    const dataDir = s.env.DNSPROXY_DATA_DIR!;
    const providerPort = await deadPort();
    // Set up as a user would, through the controller's API.
    await api(s, 'POST', '/api/v1/mail/accounts', ACCOUNT);
    await api(s, 'PUT', '/api/v1/mail/providers/upstream', { type: 'smtp', host: '127.0.0.1', port: providerPort, security: 'starttls', tls_verify: false, allow_private: true });
    await api(s, 'POST', '/api/v1/mail/rules', { provider: 'upstream' });

    // Submit while the provider is down: every message must get its 250 (queued).
    const cert = relayCert(dataDir);
    const port = Number(s.env.DNSPROXY_SUBMISSION_PORT);
    const refused: string[] = [];
    let next = 0;
    const client = async () => {
      const t = submitter(port, cert);
      try {
        while (next < QUEUED) {
          const i = next++;
          const info = await t.sendMail({ from: 'app@example.com', to: [`rcpt${i % 7}@example.org`], subject: `fault ${i}`, text: `queued ${i}\n`, messageId: `<fault-${i}@example.com>` });
          if (!/^250 /.test(info.response)) refused.push(`${i}: ${info.response}`);
        }
      } catch (e) {
        refused.push((e as Error).message);
      } finally {
        t.close();
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, client));
    expect(refused, 'submissions not acknowledged').to.deep.equal([]);
    // Each message has been tried against the dead provider and deferred at least once.
    await within(15_000, async () => !queueCounts(dataDir).queued);
    const beforeKill = queueCounts(dataDir);
    expect(beforeKill.delivered ?? 0).to.equal(0);

    const pid = s.pid('mail')!;
    process.kill(pid, 'SIGKILL');
    const killedAt = Date.now();
    const atKill = queueCounts(dataDir);
    const respawn = await s.respawn('mail', pid);
    // The new relay logs whether it released the killed one's leases just before "mail relay
    // started"; read both now, before the deferral lines push them out of the kept output.
    let released = '0';
    await within(10_000, async () => {
      const lines = s.output().split('\n');
      const at = lines.findIndex((l) => l.includes('"mail relay started"') && l.includes(`:${respawn.pid}:`));
      if (at < 0) return false;
      released = lines.slice(0, at).reverse().find((l) => l.includes('"released the leases'))?.match(/"messages":(\d+)/)?.[1] ?? '0';
      return true;
    });
    const relayUpAt = Date.now();

    provider = sink();
    await provider.listen(providerPort);
    const providerUpAt = Date.now();
    const want = Array.from({ length: QUEUED }, (_, i) => `<fault-${i}@example.com>`);
    let copies = new Map<string, string[]>();
    const deliveredMs = await within(DELIVERY_LIMIT_MS, async () => {
      copies = copiesById(provider!.received, 'Message-ID');
      return want.every((id) => copies.has(id));
    }).catch(() => Date.now() - providerUpAt);
    const lost = want.filter((id) => !copies.has(id));
    const duplicates = [...copies.values()].reduce((n, c) => n + c.length - 1, 0);
    const final = await within(5000, async () => Object.keys(queueCounts(dataDir)).join() === 'delivered').then(
      () => queueCounts(dataDir),
      () => queueCounts(dataDir),
    );
    console.log(
      `      ${QUEUED} queued with the provider down (${JSON.stringify(beforeKill)} just before the kill, ${JSON.stringify(atKill)} at it); ` +
        `mail restarted by supervisord ${respawn.at - killedAt} ms after SIGKILL, relay listening ${relayUpAt - respawn.at} ms after the spawn ` +
        `(${released} leases of the killed relay released); provider up → all ${QUEUED} delivered in ${deliveredMs} ms; ` +
        `lost: ${lost.length}; duplicates: ${duplicates}; queue at the end: ${JSON.stringify(final)}`,
    );
    expect(lost, 'acknowledged with 250 but never delivered').to.deep.equal([]);
    expect(final).to.deep.equal({ delivered: QUEUED });
    expect(s.events().some((e) => e.kind === 'exited' && e.name === 'mail' && /SIGKILL/.test(e.detail))).to.equal(true);
  });
});
