// The one error catalog: every error the system reports has a stable code and an HTTP status.
// Callers branch on `code`, never on message text.

export const ERRORS = {
  invalid_body: { status: 400, title: 'The request body is invalid' },
  invalid_query: { status: 400, title: 'A query parameter is invalid' },
  invalid_params: { status: 400, title: 'A path parameter is invalid' },
  invalid_zone_file: { status: 400, title: 'The zone file has errors; nothing was applied' },
  bad_request: { status: 400, title: 'The request is malformed' },
  unauthorized: { status: 401, title: 'A valid bearer token is required' },
  not_found: { status: 404, title: 'No such resource' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  conflict: { status: 409, title: 'The change conflicts with existing data' },
  payload_too_large: { status: 413, title: 'The request body is too large' },
  unsupported_media_type: { status: 415, title: 'Send application/json' },
  proxy_rejected: { status: 502, title: 'Caddy rejected the configuration' },
  unavailable: { status: 503, title: 'A component is temporarily unavailable; retry' },
  internal: { status: 500, title: 'Internal error' },
} as const;

export type ErrorCode = keyof typeof ERRORS;

/** One offending field: `path` is the dotted field path in the request (e.g. `values.0.exchange`). */
export interface FieldIssue {
  path: string;
  message: string;
}

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly fields: FieldIssue[];
  constructor(code: ErrorCode, message?: string, fields: FieldIssue[] = []) {
    super(message ?? (fields.length ? fields.map((f) => `${f.path || '(body)'}: ${f.message}`).join('; ') : ERRORS[code].title));
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
