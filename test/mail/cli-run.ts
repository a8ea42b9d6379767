// Runs the dnsproxy CLI from its sources (tsx) against a listening API, as a user's shell would:
// only DNSPROXY_API_URL and DNSPROXY_TOKEN from the DNSPROXY_* environment, `stdin` piped in.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { apiFixture, type ApiFixture, type ApiFixtureOptions } from '../helpers/api.js';

const ENTRY = fileURLToPath(new URL('./cli-entry.ts', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(api: { url: string; token: string }, args: string[], stdin = ''): Promise<CliResult> {
  return new Promise((resolve) => {
    const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DNSPROXY_'))), DNSPROXY_API_URL: api.url, DNSPROXY_TOKEN: api.token };
    const p = spawn(process.execPath, ['--import', 'tsx', ENTRY, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    p.stdin.end(stdin);
    p.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Makes the fixture's API listen on a free loopback port, as the CLI needs; returns its URL. */
export async function listenApi(f: ApiFixture): Promise<string> {
  await f.app.listen({ host: '127.0.0.1', port: 0 });
  return `http://127.0.0.1:${(f.app.server.address() as { port: number }).port}`;
}

/**
 * Registers in the enclosing describe a before-all hook that makes an API fixture (`opts`) listening on a
 * loopback port and gives it to `made` (the suite's own setup), and an after-all hook that closes it.
 * Returns `cli(args, stdin)`: the CLI run against that API with the fixture's token.
 */
export function eachCliApi(made: (f: ApiFixture) => void | Promise<void>, opts: ApiFixtureOptions = {}): (args: string[], stdin?: string) => Promise<CliResult> {
  let f: ApiFixture | undefined;
  let url = '';
  before(async () => {
    f = await apiFixture(opts);
    url = await listenApi(f);
    await made(f);
  });
  after(async () => f?.close());
  return (args, stdin = '') => runCli({ url, token: f?.token ?? '' }, args, stdin);
}
