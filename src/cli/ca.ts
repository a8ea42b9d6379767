// `dnsproxy ca export`: prints the root certificate of Caddy's internal CA (the one `tls internal`
// names are issued from) as PEM on stdout, for clients to trust (README, "Trusting the internal
// CA"). A client of GET /api/v1/ca; --json prints the API's answer (fingerprint, expiry, the
// intermediate) instead. The root's fingerprint goes to stderr so it can be compared on the device.
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { CaView } from '../api/ca.js';
import { call } from './client.js';
import type { Globals } from './commands.js';
import { printJson } from './output.js';

export function caCommands(program: Command, g: Globals): void {
  const ca = program.command('ca').description("Caddy's internal CA (tls internal)");
  ca.command('export')
    .description('print the internal CA\'s root certificate (PEM) on stdout, to install on the devices that should trust tls internal sites')
    .option('-o, --output <file>', 'write the PEM to this file instead of stdout')
    .action(async (o: { output?: string }) => {
      const res = (await call(g.target(), 'GET', '/api/v1/ca')) as { ca: CaView };
      if (g.json()) return printJson(res);
      const pem = res.ca.root_certificate.endsWith('\n') ? res.ca.root_certificate : `${res.ca.root_certificate}\n`;
      if (o.output) writeFileSync(o.output, pem, { mode: 0o644 });
      else process.stdout.write(pem);
      process.stderr.write(`${res.ca.root_common_name || 'root'}: SHA-256 ${res.ca.root_fingerprint_sha256}, valid until ${res.ca.root_not_after}\n`);
    });
}
