// The CLI's HTTP client. Contract: resolves with the parsed body of a 2xx, otherwise throws
// CliError carrying one printable line and exit code 1.
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** How long one API call may take before the CLI gives up. */
const REQUEST_TIMEOUT_MS = 30_000;

export interface ApiTarget {
  url: string;
  token?: string;
}

export async function call(target: ApiTarget, method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<unknown> {
  const res = await send(target, method, path, body, contentType);
  const text = await res.text();
  const parsed: unknown = (res.headers.get('content-type') ?? '').includes('json') && text ? JSON.parse(text) : text;
  if (res.ok) return parsed;
  throw failure(target, res, text, parsed);
}

/** GET of a binary body (a backup): the bytes of a 2xx, else CliError as call() throws it. */
export async function download(target: ApiTarget, path: string): Promise<Buffer> {
  const res = await send(target, 'GET', path);
  if (res.ok) return Buffer.from(await res.arrayBuffer());
  const text = await res.text();
  throw failure(target, res, text, (res.headers.get('content-type') ?? '').includes('json') && text ? JSON.parse(text) : text);
}

async function send(target: ApiTarget, method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<Response> {
  const url = `${target.url.replace(/\/$/, '')}${path}`;
  const headers: Record<string, string> = {};
  if (target.token) headers.authorization = `Bearer ${target.token}`;
  if (body !== undefined) headers['content-type'] = contentType;
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (e) {
    const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
    throw new CliError(`cannot reach the API at ${target.url}: ${cause} (is "dnsproxy serve" running? set --api-url or DNSPROXY_API_URL)`);
  }
  return res;
}

function failure(target: ApiTarget, res: Response, text: string, parsed: unknown): CliError {
  const err = (parsed as { error?: { code?: string; message?: string; fields?: { path: string; message: string }[] } }).error;
  if (res.status === 401 && !target.token) return new CliError('the API needs a token: pass --token or set DNSPROXY_TOKEN');
  const message = err?.message ?? (text || res.statusText);
  // Field details the summary does not already spell out (e.g. per-line zone file errors) follow, one per line.
  const details = (err?.fields ?? []).filter((f) => !message.includes(f.message)).map((f) => `\n  ${f.path}: ${f.message}`);
  return new CliError(`${message} (${err?.code ?? 'error'}, HTTP ${res.status})${details.join('')}`);
}
