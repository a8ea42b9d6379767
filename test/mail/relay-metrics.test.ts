// The relay's own Prometheus endpoint (mail_metrics_port): connections by listener and outcome,
// sessions open, messages accepted and refused by reason, AUTH results, after real SMTP sessions;
// delivery attempts by provider and result and the queued → delivered latency, after real
// deliveries (counted on the delivery thread) to a provider that speaks SMTP.
import { expect } from 'chai';
import { client, configure, mail, message, queuedIds, refusal, sink, startRelay, type RelayFixture, type Sink } from './helpers.js';

describe('mail: relay metrics endpoint', () => {
  let r: RelayFixture;
  let provider: Sink;
  let refuser: Sink;
  let port: number;
  before(async () => {
    provider = sink();
    await provider.listen();
    refuser = sink();
    await refuser.listen();
    refuser.reject = { code: 550, text: 'no such user' };
    r = await startRelay({ metricsPort: 0 });
    await configure(r, { sink: provider.port });
    r.store.putProvider({ name: 'refuser', config: { type: 'smtp', host: '127.0.0.1', port: refuser.port, security: 'starttls', tls_verify: false, allow_private: true } });
    r.store.putProvider({ name: 'direct', config: { type: 'smtp', host: '127.0.0.1', port: provider.port, security: 'starttls', tls_verify: false, allow_private: true } });
    r.store.addRule({ priority: 10, sender_domain: null, recipient_domain: 'refused.example', account: null, provider: 'refuser', fallback_provider: null });
    r.store.addRule({ priority: 20, sender_domain: null, recipient_domain: 'example.net', account: null, provider: 'direct', fallback_provider: null });
    port = (r as unknown as { relay: { metrics?: { port: number } } }).relay.metrics!.port;
  });
  after(async () => {
    await r.close();
    await provider.close();
    await refuser.close();
  });

  const scrape = async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const value = (text: string, series: string) => Number(new RegExp(`^${series.replace(/[{}"=,.+]/g, (c) => `\\${c}`)} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
  /** Scrapes until `ready` holds of the text (the delivery thread's reports reach the main thread after the commit). */
  const scrapeUntil = async (ready: (text: string) => boolean) => {
    const end = Date.now() + 10_000;
    for (;;) {
      const text = await scrape();
      if (ready(text)) return text;
      if (Date.now() > end) throw new Error(`metrics never reached the expected state:\n${text}`);
      await new Promise((resolve) => setImmediate(resolve));
    }
  };

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

  it('counts delivery attempts by provider and result, and the queued → delivered latency by provider', async () => {
    // Providers of their own (`direct`, `refuser`): the other test's delivery and the bounce's DSN go to `sink`.
    const sent = await Promise.all([client(r).sendMail(mail({ to: ['a@example.net'] })), client(r).sendMail(mail({ to: ['b@example.net'] })), client(r).sendMail(mail({ to: ['c@refused.example'] }))]);
    const ids = sent.flatMap((s) => queuedIds(s.response));
    const after = await scrapeUntil((t) => value(t, 'dnsproxy_mail_delivery_attempts_total{provider="direct",result="delivered"}') === 2 && value(t, 'dnsproxy_mail_delivery_attempts_total{provider="refuser",result="permanent"}') === 1);
    expect(ids.map((id) => message(r, id).status)).to.deep.equal(['delivered', 'delivered', 'bounced']);
    expect(provider.received.flatMap((m) => m.to).filter((to) => to.endsWith('@example.net'))).to.have.members(['a@example.net', 'b@example.net']);
    expect(value(after, 'dnsproxy_mail_delivery_attempts_total{provider="direct",result="transient"}')).to.equal(0);
    // Two deliveries observed for `direct`, none for the refuser (it delivered nothing).
    expect(value(after, 'dnsproxy_mail_delivery_latency_seconds_count{provider="direct"}')).to.equal(2);
    expect(value(after, 'dnsproxy_mail_delivery_latency_seconds_bucket{le="+Inf",provider="direct"}')).to.equal(2);
    expect(after).not.to.match(/^dnsproxy_mail_delivery_latency_seconds_count\{provider="refuser"\}/m);
    // Queued → delivered on the queue's clock: more than nothing, less than this whole test.
    const sum = Number(/^dnsproxy_mail_delivery_latency_seconds_sum\{provider="direct"\} ([\d.e-]+)$/m.exec(after)?.[1]);
    expect(sum).to.be.greaterThan(0).and.lessThan(30);
  });
});
