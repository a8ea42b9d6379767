// Crash safety of the relay process: `bin/dnsproxy mail serve` (dist/) with a real sink SMTP server
// as its provider takes a stream of submissions from concurrent nodemailer clients (STARTTLS +
// AUTH), is SIGKILLed in the middle and started again on the same ports and data dir. Every
// submission that got a 250 must reach the sink (matched by Message-ID); duplicates are allowed
// (at-least-once) and counted. Prints its figures; docs/reliability.md keeps them.
import { expect } from 'chai';
import { freePorts } from '../helpers/caddy.js';
import { configureRelay, copiesById, queueCounts, relayCert, startMailServe, submitter, type MailProcess } from '../helpers/mail.js';
import { tempDir } from '../helpers/tmp.js';
import { eventually, sink, type Sink } from './helpers.js';

/** Submissions in the stream (CRASH_TOTAL overrides it for a quick run). */
const TOTAL = Number(process.env.CRASH_TOTAL ?? 2000);
/** nodemailer clients submitting at once, each over its own pooled connection. */
const CLIENTS = 20;
/** Acknowledged submissions after which the relay is killed: mid-stream. */
const KILL_AFTER_ACKS = Math.floor(TOTAL / 2);
/** A client's pause before it submits a message again after no 250 (refused connection, reset). */
const RETRY_MS = 50;
/** Every acknowledged message must reach the sink within this after the clients are done. */
const DELIVERY_LIMIT_MS = 30_000;
/** Header carrying the submission attempt: copies with the same attempt are redeliveries by the relay. */
const ATTEMPT = 'X-Crash-Attempt';

describe('mail: crash safety of `dnsproxy mail serve` (SIGKILL mid-stream)', function () {
  this.timeout(120_000);
  let tmp: ReturnType<typeof tempDir> | undefined;
  let provider: Sink | undefined;
  const relays: MailProcess[] = [];

  afterEach(async () => {
    await Promise.all(relays.splice(0).map((r) => r.kill()));
    await provider?.close();
    tmp?.cleanup();
    tmp = provider = undefined;
  });

  it(`SIGKILL after ${KILL_AFTER_ACKS} of ${TOTAL} acknowledged submissions, restart: every 250 is delivered, none lost`, async () => {
    tmp = tempDir('dnsproxy-mail-crash-');
    const dataDir = tmp.dir;
    provider = sink();
    await provider.listen();
    await configureRelay(dataDir, provider.port);
    const [smtpPort, submissionPort] = (await freePorts(2)) as [number, number];
    const serve = async () => {
      const r = await startMailServe({ dataDir, smtpPort, submissionPort });
      relays.push(r);
      return r;
    };
    const first = await serve();
    const cert = relayCert(dataDir);

    const acked = new Map<number, number>(); // message index → the attempt that got the 250
    let failedSends = 0;
    let ackedByFirst = 0;
    let killedAt = 0;
    let restartedAt = 0;
    let atKill: Record<string, number> = {};
    let second: Promise<MailProcess> | undefined;
    const started = Date.now();
    let next = 0;
    const crash = async () => {
      killedAt = Date.now();
      ackedByFirst = acked.size;
      await first.kill();
      // What the dead relay left: accepted but not yet handed to the provider.
      atKill = queueCounts(dataDir);
      const r = await serve();
      restartedAt = Date.now();
      return r;
    };
    const client = async () => {
      const t = submitter(submissionPort, cert);
      try {
        while (next < TOTAL) {
          const i = next++;
          for (let attempt = 1; !acked.has(i); attempt++) {
            try {
              const info = await t.sendMail({
                from: 'app@example.com',
                to: [`rcpt${i % 10}@example.org`],
                subject: `crash ${i}`,
                text: `message ${i} of ${TOTAL}, attempt ${attempt}\n`,
                messageId: `<crash-${i}@example.com>`,
                headers: { [ATTEMPT]: String(attempt) },
              });
              if (!/^250 /.test(info.response)) throw new Error(`unexpected reply ${info.response}`);
              acked.set(i, attempt);
            } catch {
              failedSends++;
              await new Promise((r) => setTimeout(r, RETRY_MS));
            }
            if (!second && acked.size >= KILL_AFTER_ACKS) second = crash();
          }
        }
      } finally {
        t.close();
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, client));
    const clientsDone = Date.now();
    expect(second, 'the relay was killed mid-stream').to.not.equal(undefined);
    const restarted = await second!;
    expect(acked.size).to.equal(TOTAL);

    // Every acknowledged message reaches the sink, and the queue ends with nothing pending.
    const want = [...acked.keys()].map((i) => `<crash-${i}@example.com>`);
    let copies = new Map<string, string[]>();
    try {
      await eventually(
        () => {
          copies = copiesById(provider!.received, ATTEMPT);
          return want.every((id) => copies.has(id));
        },
        DELIVERY_LIMIT_MS,
        'every acknowledged message at the sink',
      );
    } catch {
      // Fall through to the assertion, which names what is missing.
    }
    const allDeliveredAt = Date.now();
    const lost = want.filter((id) => !copies.has(id));
    const final = await eventually(() => {
      const c = queueCounts(dataDir);
      return Object.keys(c).every((s) => s === 'delivered') && c;
    }, 5000, 'an empty queue').catch(() => queueCounts(dataDir));

    // Duplicates: extra copies of one Message-ID. Same attempt header: the relay sent one accepted
    // message twice (killed between the provider's 250 and its own commit). Different attempts: a
    // submission whose 250 the client never saw (in flight at the kill) was committed, and the
    // client's retry was accepted too.
    let relayDuplicates = 0;
    let clientDuplicates = 0;
    for (const attempts of copies.values()) {
      relayDuplicates += attempts.length - new Set(attempts).size;
      clientDuplicates += new Set(attempts).size - 1;
    }
    const secs = (ms: number) => (ms / 1000).toFixed(2);
    console.log(
      `      ${TOTAL} acknowledged (${ackedByFirst} before the kill at ${secs(killedAt - started)} s, ${acked.size - ackedByFirst} after); ` +
        `${failedSends} client sends without a 250 (retried); relay back ${restartedAt - killedAt} ms after SIGKILL; ` +
        `queue at the kill: ${JSON.stringify(atKill)}; clients done at ${secs(clientsDone - started)} s, all delivered ${allDeliveredAt - clientsDone} ms later; ` +
        `lost: ${lost.length}; duplicates: ${relayDuplicates + clientDuplicates} (${relayDuplicates} resent by the relay, ${clientDuplicates} resubmitted by a client after a lost 250); ` +
        `sink received ${provider.received.length}; queue at the end: ${JSON.stringify(final)}`,
    );
    expect(lost, 'acknowledged with 250 but never delivered').to.deep.equal([]);
    expect(Object.keys(final), 'messages left undelivered in the queue').to.deep.equal(['delivered']);
    expect(ackedByFirst).to.be.within(KILL_AFTER_ACKS, TOTAL - 1);

    // The restarted relay still stops cleanly.
    expect(await restarted.stop()).to.equal(0);
  });
});
