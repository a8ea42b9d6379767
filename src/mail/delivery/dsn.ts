// Delivery status notifications (RFC 3464): the message the relay sends back to a sender whose
// message ended `bounced` or `failed`. Pure apart from reading templates/dsn.hbs once; the clock
// and the random token come in as arguments.
//
//   multipart/report; report-type=delivery-status
//   ├── text/plain                 what happened, for a person (templates/dsn.hbs)
//   ├── message/delivery-status    Reporting-MTA, Arrival-Date, then per recipient:
//   │                              Final-Recipient, Action: failed, Status, Diagnostic-Code, Last-Attempt-Date
//   └── text/rfc822-headers        the original message's headers (never its body)
//
// The DSN is sent with the null reverse-path (MAIL FROM:<>), so a DSN is never answered by
// another. Its From: is MAILER-DAEMON at the sender's own domain: the relay is allowed to send for
// that domain (the account was), providers that only accept verified sender domains take it, and
// the queue routes and DKIM-signs it as mail of that domain (src/mail/queue/queue.ts).
import { lazyTemplate } from '../../templates.js';
import { domainOf, type RecipientReply } from '../../model/mail.js';

// `../../../templates` from src/mail (tsx) and from dist/mail (compiled) alike.
const TEMPLATE_URL = new URL('../../../templates/dsn.hbs', import.meta.url);

/** Headers returned in the third part at most; a longer header block is cut at a line end. */
export const MAX_RETURNED_HEADERS = 64 * 1024;
/** A provider reply is cut to this in the report: header-style lines stay far below 998 bytes. */
const MAX_REPLY = 900;

export interface DsnInput {
  /** This relay's host name (Reporting-MTA). */
  reportingMta: string;
  /** The queue id of the message reported on. */
  queueId: string;
  /** The original envelope sender: the DSN is addressed to it. */
  sender: string;
  arrivalMs: number;
  nowMs: number;
  /** `bounced`: refused for good; `failed`: retried until the give-up time. */
  reason: 'bounced' | 'failed';
  attempts: number;
  /** Who failed, each with the provider's last reply (code null: no reply; provider null: not configured). */
  recipients: readonly RecipientReply[];
  provider: string | null;
  /** The message as accepted; only its headers are returned. */
  original: Buffer;
  /** Random hex: the DSN's Message-ID and MIME boundary. */
  token: string;
}

interface View {
  reportingMta: string;
  gaveUp: boolean;
  retriedFor: string;
  attempts: number;
  queueId: string;
  arrivalDate: string;
  subject: string;
  recipients: { rcpt: string; status: string; response: string }[];
}

const template = lazyTemplate<View>(TEMPLATE_URL, () => ({}));

/** RFC 5322 date-time in UTC. */
export const rfc5322Date = (ms: number) => new Date(ms).toUTCString().replace('GMT', '+0000');

/** One line of text: line breaks and control characters become spaces, runs of blanks one space. */
const oneLine = (s: string, max = MAX_REPLY) =>
  s
    // eslint-disable-next-line no-control-regex -- control characters are what this strips
    .replace(/[\u0000-\u001f\u007f]+/g, ' ')
    .replace(/ {2,}/g, ' ')
    .trim()
    .slice(0, max);

/** Printable ASCII only (a delivery-status field); anything else becomes `?`. */
const ascii = (s: string) => oneLine(s).replace(/[^\x20-\x7e]/g, '?');

/** An address for Final-Recipient: ASCII as is, other bytes as xtext `+HH` (RFC 3461 4.2). */
const xtext = (address: string) =>
  [...Buffer.from(address, 'utf8')].map((b) => (b > 0x20 && b < 0x7f && b !== 0x2b && b !== 0x3d ? String.fromCharCode(b) : `+${b.toString(16).toUpperCase().padStart(2, '0')}`)).join('');

/**
 * The RFC 3463 status for a reply: the enhanced code the reply carries, else one from its class.
 *
 *   reply                        status
 *   "550 5.1.1 no such user"     5.1.1
 *   "550 mailbox unavailable"    5.0.0
 *   "451 try later"              4.0.0
 *   "5.1.10 example.org accepts  5.1.10  (no reply: our own diagnosis, e.g. a null MX, mx.ts / http.ts)
 *    no mail (null MX)"
 *   no reply, a provider         4.4.1   (no answer from the host)
 *   no reply, no provider        4.3.5   (no rule or provider: our configuration)
 */
export function enhancedStatus(code: number | null, response: string, provider: string | null): string {
  const m = /^(?:\d{3}[ -])?([245]\.\d{1,3}\.\d{1,3})(?=\s|$)/.exec(response);
  if (m?.[1]) return m[1];
  if (code !== null && code >= 500) return '5.0.0';
  if (code !== null && code >= 400) return '4.0.0';
  return provider === null ? '4.3.5' : '4.4.1';
}

/** Diagnostic-Code: the SMTP reply with its code in front, or our own text when there was no reply. */
function diagnostic(code: number | null, response: string): string {
  if (code === null) return `X-dnsproxy; ${ascii(response)}`;
  const text = ascii(response);
  return `smtp; ${text.startsWith(String(code)) ? text : `${code} ${text}`}`;
}

/** The header block of `raw` (up to the first empty line), cut to MAX_RETURNED_HEADERS at a line end, CRLF line ends. */
export function headerBlock(raw: Buffer): string {
  const text = raw.subarray(0, MAX_RETURNED_HEADERS + 4).toString('utf8');
  const end = text.search(/\r?\n\r?\n/);
  let head = end < 0 ? text : text.slice(0, end);
  if (head.length > MAX_RETURNED_HEADERS) head = head.slice(0, head.lastIndexOf('\n', MAX_RETURNED_HEADERS)).replace(/\r$/, '');
  return head.replace(/\r?\n/g, '\r\n');
}

/** The Subject of a header block (unfolded), '' when there is none. */
function subjectOf(headers: string): string {
  const m = /^subject:[ \t]*(.*(?:\r\n[ \t].*)*)/im.exec(headers);
  return m?.[1] ? oneLine(m[1], 200) : '';
}

/** "3 days", "5 hours", "12 minutes", "40 seconds": how long the relay kept trying. */
export function span(ms: number): string {
  const units: [string, number][] = [['day', 86_400_000], ['hour', 3_600_000], ['minute', 60_000], ['second', 1000]];
  for (const [name, size] of units) {
    const n = Math.floor(ms / size);
    if (n >= 1 || name === 'second') return `${n} ${name}${n === 1 ? '' : 's'}`;
  }
  return '0 seconds';
}

/** The DSN as a raw RFC 5322 message (CRLF line ends). Does not mutate `input`. */
export function renderDsn(input: DsnInput): Buffer {
  const headers = headerBlock(input.original);
  const boundary = `=_dnsproxy_dsn_${input.token}`;
  const recipients = input.recipients.map((r) => ({ ...r, status: enhancedStatus(r.code, r.response, input.provider) }));
  const human = template({
    reportingMta: input.reportingMta,
    gaveUp: input.reason === 'failed',
    retriedFor: span(input.nowMs - input.arrivalMs),
    attempts: input.attempts,
    queueId: input.queueId,
    arrivalDate: rfc5322Date(input.arrivalMs),
    subject: subjectOf(headers) || '(none)',
    recipients: recipients.map((r) => ({ rcpt: oneLine(r.rcpt, 256), status: r.status, response: oneLine(r.response) })),
  })
    .replace(/^\n+/, '')
    .replace(/\r?\n/g, '\r\n');
  const report = [
    `Reporting-MTA: dns; ${ascii(input.reportingMta)}`,
    `X-Dnsproxy-Queue-ID: ${ascii(input.queueId)}`,
    `Arrival-Date: ${rfc5322Date(input.arrivalMs)}`,
    ...recipients.flatMap((r) => [
      '',
      `Final-Recipient: rfc822; ${xtext(r.rcpt)}`,
      'Action: failed',
      `Status: ${r.status}`,
      `Diagnostic-Code: ${diagnostic(r.code, r.response)}`,
      `Last-Attempt-Date: ${rfc5322Date(input.nowMs)}`,
    ]),
  ].join('\r\n');
  // eslint-disable-next-line no-control-regex -- the ASCII range, NUL included
  const cte = (s: string) => (/[^\x00-\x7f]/.test(s) ? '8bit' : '7bit');
  const message = [
    `From: Mail Delivery System <MAILER-DAEMON@${domainOf(input.sender)}>`,
    `To: <${input.sender}>`,
    `Subject: ${input.reason === 'failed' ? 'Undelivered mail: delivery gave up' : 'Undelivered mail returned to sender'}`,
    `Date: ${rfc5322Date(input.nowMs)}`,
    `Message-ID: <${input.token}.dsn@${ascii(input.reportingMta)}>`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    '',
    'This is a MIME-encapsulated delivery status notification.',
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=utf-8',
    `Content-Transfer-Encoding: ${cte(human)}`,
    '',
    human.replace(/(\r\n)*$/, ''),
    '',
    `--${boundary}`,
    'Content-Type: message/delivery-status',
    '',
    report,
    '',
    `--${boundary}`,
    'Content-Type: text/rfc822-headers',
    `Content-Transfer-Encoding: ${cte(headers)}`,
    '',
    headers,
    '',
    `--${boundary}--`,
    '',
  ].join('\r\n');
  return Buffer.from(message, 'utf8');
}
