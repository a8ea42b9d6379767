// The one error catalog: every error the system reports has a stable code and an HTTP status;
// the mail relay's also carry the SMTP reply (code + RFC 3463 enhanced status) they become.
// Callers branch on `code`, never on message text.

export const ERRORS = {
  invalid_body: { status: 400, title: 'The request body is invalid' },
  invalid_query: { status: 400, title: 'A query parameter is invalid' },
  invalid_params: { status: 400, title: 'A path parameter is invalid' },
  invalid_zone_file: { status: 400, title: 'The zone file has errors; nothing was applied' },
  bad_request: { status: 400, title: 'The request is malformed' },
  unauthorized: { status: 401, title: 'A valid bearer token is required' },
  forbidden: { status: 403, title: 'The token\'s scope does not allow this' },
  not_found: { status: 404, title: 'No such resource' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  request_timeout: { status: 408, title: 'The request was not received in time' },
  conflict: { status: 409, title: 'The change conflicts with existing data' },
  payload_too_large: { status: 413, title: 'The request body is too large' },
  uri_too_long: { status: 414, title: 'The URL is too long' },
  unsupported_media_type: { status: 415, title: 'Send application/json' },
  headers_too_large: { status: 431, title: 'The request headers are too large' },
  proxy_rejected: { status: 502, title: 'Caddy rejected the configuration' },
  acme_failed: { status: 502, title: 'The ACME CA did not issue the certificate' },
  feature_off: { status: 409, title: "This feature is off in the controller's settings" },
  unavailable: { status: 503, title: 'A component is temporarily unavailable; retry' },
  rate_limited: { status: 429, title: 'Too many requests with this key; try again after Retry-After seconds' },
  internal: { status: 500, title: 'Internal error' },
  // Mail relay (src/mail): 4xx replies are transient (the client retries), 5xx permanent.
  mail_auth_required: { status: 401, smtp: 530, enhanced: '5.7.0', title: 'Authentication required' },
  mail_auth_failed: { status: 401, smtp: 535, enhanced: '5.7.8', title: 'Authentication credentials invalid' },
  mail_auth_busy: { status: 503, smtp: 454, enhanced: '4.7.0', title: 'Temporary authentication failure, try again later' },
  mail_starttls_required: { status: 401, smtp: 530, enhanced: '5.7.0', title: 'Must issue a STARTTLS command first' },
  mail_auth_locked: { status: 429, smtp: 454, enhanced: '4.7.0', title: 'Too many failed logins, try again later' },
  mail_auth_in_transaction: { status: 400, smtp: 503, enhanced: '5.5.1', title: 'AUTH is not permitted during a mail transaction; send RSET first' },
  mail_sender_denied: { status: 403, smtp: 550, enhanced: '5.7.1', title: 'Sender address not allowed for this account' },
  mail_no_route: { status: 403, smtp: 550, enhanced: '5.7.1', title: 'Relaying to this domain is not configured' },
  mail_too_large: { status: 413, smtp: 552, enhanced: '5.3.4', title: 'Message exceeds the maximum size' },
  mail_shutting_down: { status: 503, smtp: 421, enhanced: '4.3.2', title: 'Service shutting down, try again later' },
  mail_store_unavailable: { status: 503, smtp: 451, enhanced: '4.3.0', title: 'Temporary local problem, try again later' },
  mail_rate_limited: { status: 429, smtp: 451, enhanced: '4.7.0', title: 'Too many messages from this account, try again later' },
  mail_connection_rate: { status: 429, smtp: 421, enhanced: '4.7.0', title: 'Too many connections from this address, try again later' },
  mail_client_limit: { status: 429, smtp: 421, enhanced: '4.7.0', title: 'Too many connections from this address at once, try again later' },
  mail_data_memory_full: { status: 507, smtp: 452, enhanced: '4.3.1', title: 'Insufficient system storage: too much mail being received at once, try again later' },
  mail_session_expired: { status: 503, smtp: 421, enhanced: '4.4.2', title: 'Session time limit reached, reconnect to go on' },
  // Inbound mail (the SMTP port without AUTH, for the domains we host: src/mail/smtp/inbound.ts).
  mail_relay_denied: { status: 403, smtp: 550, enhanced: '5.7.1', title: 'Relaying denied: without AUTH this server accepts mail only for its own domains' },
  mail_too_many_refusals: { status: 429, smtp: 421, enhanced: '4.7.0', title: 'Too many refused recipients in this session, closing' },
  mail_inbound_unrouted: { status: 503, smtp: 451, enhanced: '4.3.5', title: 'Mail for this domain cannot be routed here yet, try again later' },
  mail_dmarc_reject: { status: 403, smtp: 550, enhanced: '5.7.1', title: 'Rejected by the DMARC policy of the From: domain' },
  mail_auth_check_failed: { status: 503, smtp: 451, enhanced: '4.4.3', title: 'Could not check SPF/DKIM/DMARC (DNS), try again later' },
  mail_recipient_suppressed: { status: 409, smtp: 550, enhanced: '5.1.1', title: 'The recipient is suppressed' },
  mail_loop: { status: 508, smtp: 554, enhanced: '5.4.6', title: 'Too many hops: a mail loop' },
} as const;

export type ErrorCode = keyof typeof ERRORS;
/** Codes that have an SMTP reply. */
export type SmtpErrorCode = { [K in ErrorCode]: (typeof ERRORS)[K] extends { smtp: number } ? K : never }[ErrorCode];

/** An Error smtp-server turns into the reply `<smtp> <enhanced> <detail or title>`; `detail` carries no status code of its own. */
export function smtpError(code: SmtpErrorCode, detail?: string): Error & { responseCode: number; code: SmtpErrorCode } {
  const e = ERRORS[code];
  return Object.assign(new Error(`${e.enhanced} ${detail ?? e.title}`), { responseCode: e.smtp, code });
}

/** One offending field: `path` is the dotted field path in the request (e.g. `values.0.exchange`). */
export interface FieldIssue {
  path: string;
  message: string;
}

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly fields: FieldIssue[];
  constructor(code: ErrorCode, message?: string, fields: FieldIssue[] = []) {
    const whole = code === 'invalid_query' ? '(query)' : code === 'invalid_params' ? '(path)' : '(body)';
    super(message ?? (fields.length ? fields.map((f) => `${f.path || whole}: ${f.message}`).join('; ') : ERRORS[code].title));
    this.code = code;
    this.fields = fields;
  }
  get status(): number {
    return ERRORS[this.code].status;
  }
  toJSON(): { error: { code: ErrorCode; message: string; fields?: FieldIssue[] } } {
    return { error: { code: this.code, message: this.message, ...(this.fields.length ? { fields: this.fields } : {}) } };
  }
}

/** A 400 for one field. */
export function fieldError(path: string, message: string, code: ErrorCode = 'invalid_body'): AppError {
  return new AppError(code, undefined, [{ path, message }]);
}

/** Turns zod issues into field issues (`path` joined with dots). */
export function zodFields(issues: readonly { path: readonly PropertyKey[]; message: string }[]): FieldIssue[] {
  return issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message }));
}
