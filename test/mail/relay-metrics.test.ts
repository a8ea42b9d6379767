// The relay's own Prometheus endpoint (mail_metrics_port): connections by listener and outcome,
// sessions open, messages accepted and refused by reason, AUTH results, after real SMTP sessions.
import { expect } from 'chai';
import { client, configure, mail, refusal, sink, startRelay, type RelayFixture, type Sink } from './helpers.js';

describe('mail: relay metrics endpoint', () => {
  let r: RelayFixture;
  let provider: Sink;
  let port: number;
  before(async () => {
    provider = sink();
    await provider.listen();
    r = await startRelay({ metricsPort: 0 });
    await configure(r, { sink: provider.port });
    port = (r as unknown as { relay: { metrics?: { port: number } } }).relay.metrics!.port;
  });
  after(async () => {
    await r.close();
    await provider.close();
  });

  const scrape = async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const value = (text: string, series: string) => Number(new RegExp(`^${series.replace(/[{}"=,]/g, (c) => `\\${c}`)} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);

  it('counts connections, AUTH ok/fail, messages accepted and refused by reason', async () => {
    const before = await scrape();
    await client(r).sendMail(mail());
    await refusal(client(r, { pass: 'wrong password!' }).sendMail(mail()));
    await refusal(client(r).sendMail(mail({ from: 'app@elsewhere.example' })));
    const after = await scrape();
    const d = (series: string) => value(after, series) - value(before, series);
    expect(d('dnsproxy_mail_connections_total{listener="submission",outcome="accepted"}')).to.equal(3);
    expect(d('dnsproxy_mail_auth_total{listener="submission",result="ok"}')).to.equal(2);
    expect(d('dnsproxy_mail_auth_total{listener="submission",result="mail_auth_failed"}')).to.equal(1);
    expect(d('dnsproxy_mail_messages_total{listener="submission",result="accepted",reason="accepted"}')).to.equal(1);
    expect(d('dnsproxy_mail_messages_total{listener="submission",result="rejected",reason="mail_sender_denied"}')).to.equal(1);
    expect(after).to.match(/^dnsproxy_mail_sessions_active\{listener="submission"\} \d+$/m);
    expect((await fetch(`http://127.0.0.1:${port}/other`)).status).to.equal(404);
  });
});
