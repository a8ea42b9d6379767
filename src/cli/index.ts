// The dnsproxy command line. Exit codes: 0 ok, 1 error, 2 usage error; errors are one line on stderr.
import { Command, CommanderError } from 'commander';
import { VERSION } from '../version.js';
import { defaultApiUrl } from './api-url.js';
import { backupCommands } from './backup.js';
import { caCommands } from './ca.js';
import { CliError } from './client.js';
import { recordCommands, tokenCommands, zoneCommands } from './commands.js';
import { deviceCommands } from './devices.js';
import { viewCommands } from './views.js';
import { certCommands } from './cert.js';
import { mailCommands } from './mail.js';
import { resolveCommand } from './resolve.js';
import { routeCommands } from './routes.js';
import { serveCommand } from './serve.js';
import { stateCommands } from './state.js';
import { statusCommand } from './status.js';
import { statsCommand } from './stats.js';

export async function main(argv: string[]): Promise<number> {
  const program = new Command('dnsproxy')
    .version(VERSION)
    .description('DNS names, Caddy routes and mail relay for a small private network')
    .option('--api-url <url>', 'controller API (env DNSPROXY_API_URL; default from DNSPROXY_LISTEN_IP and DNSPROXY_API_PORT)', defaultApiUrl(process.env))
    .option('--token <token>', 'API bearer token (env DNSPROXY_TOKEN)')
    .option('--json', 'machine-readable output')
    .exitOverride()
    .configureOutput({ outputError: (s, write) => write(s.replace(/^error: /, 'dnsproxy: usage: ')) });
  const opts = () => program.opts<{ apiUrl: string; token?: string; json?: boolean }>();
  // The token's env default is read here, not given to commander, so --help never prints it.
  const g = { target: () => ({ url: opts().apiUrl, token: opts().token ?? (process.env.DNSPROXY_TOKEN || undefined) }), json: () => Boolean(opts().json) };
  recordCommands(program, g);
  zoneCommands(program, g);
  routeCommands(program, g);
  deviceCommands(program, g);
  tokenCommands(program, g);
  viewCommands(program, g);
  certCommands(program, g);
  resolveCommand(program, g.json);
  serveCommand(program);
  mailCommands(program, g);
  statusCommand(program, g);
  statsCommand(program, g);
  backupCommands(program, g);
  stateCommands(program, g);
  caCommands(program, g);
  // Sub-commands inherit exitOverride so usage errors reach the catch below.
  const override = (c: Command) => {
    c.exitOverride();
    c.commands.forEach(override);
  };
  override(program);

  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    if (e instanceof CliError) {
      process.stderr.write(`dnsproxy: ${e.message}\n`);
      return e.exitCode;
    }
    process.stderr.write(`dnsproxy: unexpected error: ${(e as Error).stack ?? String(e)}\n`);
    return 1;
  }
}
