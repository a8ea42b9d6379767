// The relay's pure parts as tables: routing, provider turns, backoff, error classes, next state,
// the login throttle.
import { expect } from 'chai';
import { afterAttempt, backoff, classify, settle } from '../../src/mail/queue/policy.js';
import { matchRule, providerFor } from '../../src/mail/queue/route.js';
import type { Attempt, Rule } from '../../src/model/mail.js';
import { AuthThrottle } from '../../src/mail/smtp/throttle.js';

const rule = (over: Partial<Rule>): Rule => ({ id: over.provider ?? 'r', priority: 100, sender_domain: null, recipient_domain: null, account: null, provider: 'default', fallback_provider: null, ...over });

describe('mail: routing and retry policy', () => {
  const rules = [
    rule({ provider: 'billing', account: 'billing' }),
    rule({ provider: 'to-net', recipient_domain: 'example.net' }),
    rule({ provider: 'from-org', sender_domain: 'example.org', recipient_domain: 'example.com' }),
    rule({ provider: 'default' }),
  ];
  const cases: [string, string, string, string | null][] = [
    // account, sender domain, recipient domain → provider of the first matching rule
    ['billing', 'example.org', 'example.net', 'billing'],
    ['app', 'example.org', 'example.net', 'to-net'],
    ['app', 'example.org', 'example.com', 'from-org'],
    ['app', 'example.com', 'example.com', 'default'],
  ];
  for (const [account, senderDomain, recipientDomain, want] of cases)
    it(`rule for ${account}, ${senderDomain} → ${recipientDomain}: ${want}`, () => {
      expect(matchRule(rules, { account, senderDomain, recipientDomain })?.provider ?? null).to.equal(want);
    });

  it('no rule matches: no route', () => {
    expect(matchRule(rules.slice(0, 3), { account: 'app', senderDomain: 'example.com', recipientDomain: 'example.com' })).to.equal(null);
  });

  it('the fallback takes turns with the primary after fallbackAfter failures', () => {
    const r = { provider: 'p', fallback_provider: 'f' };
    expect([0, 1, 2, 3, 4, 5].map((n) => providerFor(r, n, 2))).to.deep.equal(['p', 'p', 'f', 'p', 'f', 'p']);
    expect([0, 3, 9].map((n) => providerFor({ provider: 'p', fallback_provider: null }, n, 2))).to.deep.equal(['p', 'p', 'p']);
  });

  it('backoff doubles from the base and stops at the cap (1 min → 1 h)', () => {
    const p = { baseMs: 60_000, maxMs: 3_600_000 };
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoff(n, p) / 60_000)).to.deep.equal([1, 2, 4, 8, 16, 32, 60, 60]);
  });

  const errors: [string, { code?: string; responseCode?: number; response?: string; message: string }, 'transient' | 'permanent'][] = [
    ['550 to RCPT', { code: 'EENVELOPE', responseCode: 550, response: '550 no such user', message: 'x' }, 'permanent'],
    ['554 to DATA', { code: 'EMESSAGE', responseCode: 554, response: '554 spam', message: 'x' }, 'permanent'],
    ['451', { code: 'EMESSAGE', responseCode: 451, response: '451 later', message: 'x' }, 'transient'],
    ['421 closing', { code: 'ECONNECTION', responseCode: 421, response: '421 bye', message: 'x' }, 'transient'],
    ['503 bad sequence', { code: 'EPROTOCOL', responseCode: 503, response: '503 sequence', message: 'x' }, 'transient'],
    ['535 our credentials', { code: 'EAUTH', responseCode: 535, response: '535 bad auth', message: 'x' }, 'transient'],
    ['connection refused', { code: 'ESOCKET', message: 'connect ECONNREFUSED 127.0.0.1:1' }, 'transient'],
    ['timeout', { code: 'ETIMEDOUT', message: 'Greeting never received' }, 'transient'],
  ];
  for (const [what, err, want] of errors)
    it(`classifies ${what} as ${want}`, () => {
      expect(classify(err).outcome).to.equal(want);
    });

  it('next state: delivered, bounced, deferred by backoff, one last try at the deadline, then failed', () => {
    const p = { baseMs: 1000, maxMs: 8000, giveUpMs: 20_000 };
    const at = (outcome: Attempt['outcome']): Attempt => ({ provider: 'p', outcome, code: outcome === 'delivered' ? 250 : 451, response: 'r', duration_ms: 1 });
    const msg = { attempts: 2, created_at_ms: 0 };
    expect(afterAttempt(msg, at('delivered'), 5000, p)).to.include({ status: 'delivered', last_error: null });
    expect(afterAttempt(msg, at('permanent'), 5000, p)).to.include({ status: 'bounced', last_error: 'p: r' });
    expect(afterAttempt(msg, at('transient'), 5000, p)).to.include({ status: 'deferred', next_attempt_at: 5000 + 4000 });
    expect(afterAttempt({ attempts: 9, created_at_ms: 0 }, at('transient'), 15_000, p)).to.include({ status: 'deferred', next_attempt_at: 20_000 });
    expect(afterAttempt(msg, at('transient'), 20_000, p)).to.include({ status: 'failed' });
  });

  it("next state: a provider's Retry-After delays the next attempt when it is longer than the backoff, never past the deadline", () => {
    const p = { baseMs: 1000, maxMs: 8000, giveUpMs: 20_000 };
    const after = (ms: number): Attempt => ({ provider: 'p', outcome: 'transient', code: null, response: '4.4.5 HTTP 429', duration_ms: 1, retry_after_ms: ms });
    const msg = { attempts: 2, created_at_ms: 0 }; // backoff 4 s
    expect(afterAttempt(msg, after(10_000), 5000, p)).to.include({ status: 'deferred', next_attempt_at: 15_000 });
    expect(afterAttempt(msg, after(500), 5000, p), 'shorter than the backoff').to.include({ next_attempt_at: 9000 });
    expect(afterAttempt(msg, after(60_000), 5000, p), 'the last attempt at the deadline').to.include({ next_attempt_at: 20_000 });
  });

  describe('per-recipient outcomes (settle)', () => {
    const p = { baseMs: 1000, maxMs: 8000, giveUpMs: 20_000 };
    const msg = { attempts: 0, created_at_ms: 0, rcpt_to: ['ok@example.org', 'Gone@example.org', 'busy@example.org'] };
    const refuse = (rcpt: string, code: number) => ({ rcpt, code, response: `${code} ${rcpt}` });
    const shape = (r: ReturnType<typeof settle>) => [r.self, ...r.splits].map((x) => [x.rcpt_to.join(','), x.attempt.outcome, x.attempt.code, x.next.status]);
    const cases: [string, Attempt, (string | number | null)[][]][] = [
      // what the provider said → [recipients, outcome logged, code logged, next status] for the message, then each split
      ['one 250 for all', { provider: 'p', outcome: 'delivered', code: 250, response: '250 ok', duration_ms: 1 }, [['ok@example.org,Gone@example.org,busy@example.org', 'delivered', 250, 'delivered']]],
      ['one 550 (at DATA) for all', { provider: 'p', outcome: 'permanent', code: 550, response: '550 no', duration_ms: 1 }, [['ok@example.org,Gone@example.org,busy@example.org', 'permanent', 550, 'bounced']]],
      [
        '250 with one RCPT 550 (matched case-insensitively) and one RCPT 450',
        { provider: 'p', outcome: 'delivered', code: 250, response: '250 ok', duration_ms: 1, refused: [refuse('gone@example.org', 550), refuse('busy@example.org', 450)] },
        [
          ['ok@example.org', 'delivered', 250, 'delivered'],
          ['busy@example.org', 'transient', 450, 'deferred'],
          ['Gone@example.org', 'permanent', 550, 'bounced'],
        ],
      ],
      [
        'every RCPT refused, 450 and 550',
        { provider: 'p', outcome: 'transient', code: 450, response: '450 x', duration_ms: 1, refused: [refuse('ok@example.org', 450), refuse('gone@example.org', 550), refuse('busy@example.org', 503)] },
        [
          ['ok@example.org,busy@example.org', 'transient', 450, 'deferred'],
          ['Gone@example.org', 'permanent', 550, 'bounced'],
        ],
      ],
      ['every RCPT refused with 550', { provider: 'p', outcome: 'permanent', code: 550, response: '550 x', duration_ms: 1, refused: msg.rcpt_to.map((r) => refuse(r, 550)) }, [['ok@example.org,Gone@example.org,busy@example.org', 'permanent', 550, 'bounced']]],
    ];
    for (const [what, attempt, want] of cases)
      it(what, () => {
        const r = settle(msg, attempt, 5000, p);
        expect(shape(r)).to.deep.equal(want);
        // Each part's replies are what its DSN reports: one per recipient, with that recipient's own reply.
        for (const part of [r.self, ...r.splits]) expect(part.replies.map((x) => x.rcpt)).to.deep.equal(part.rcpt_to);
      });

    it('a refused recipient past the give-up time fails (and gets a DSN) while the accepted ones are delivered', () => {
      const attempt: Attempt = { provider: 'p', outcome: 'delivered', code: 250, response: '250 ok', duration_ms: 1, refused: [refuse('busy@example.org', 450)] };
      const r = settle({ ...msg, rcpt_to: ['ok@example.org', 'busy@example.org'] }, attempt, 25_000, p);
      expect(shape(r)).to.deep.equal([
        ['ok@example.org', 'delivered', 250, 'delivered'],
        ['busy@example.org', 'transient', 450, 'failed'],
      ]);
      expect(r.splits[0]!.replies).to.deep.equal([{ rcpt: 'busy@example.org', code: 450, response: '450 busy@example.org' }]);
    });
  });

  it('login throttle: the delay doubles per failure from one address, others are unaffected, success and time reset it', () => {
    let now = 0;
    const t = new AuthThrottle({ baseMs: 100, maxMs: 500, windowMs: 1000 }, () => now);
    expect([1, 2, 3, 4, 5].map(() => t.fail('192.0.2.1'))).to.deep.equal([100, 200, 400, 500, 500]);
    expect(t.fail('192.0.2.2')).to.equal(100);
    t.succeed('192.0.2.1');
    expect(t.fail('192.0.2.1')).to.equal(100);
    now = 2000;
    expect(t.fail('192.0.2.2')).to.equal(100);
  });
});
