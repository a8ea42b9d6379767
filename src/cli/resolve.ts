// `dnsproxy resolve`: asks a DNS server (ours by default) with the dns2 client.
import type { Command } from 'commander';
import type DNS from 'dns2';
import { CliError } from './client.js';
import { printJson, table } from './output.js';

const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];

function dataOf(a: DNS.Packet.Resource): string {
  const parts = [a.address, a.domain ?? a.ns, a.exchange && `${a.priority} ${a.exchange}`, a.target && `${a.priority} ${a.weight} ${a.port} ${a.target}`, a.primary && `${a.primary} ${a.admin} ${a.serial}`, a.tag && `${a.flags} ${a.tag} "${a.value}"`];
  const data = Array.isArray(a.data) ? a.data.join('') : a.data;
  return parts.find(Boolean) ?? (data !== undefined ? `"${data}"` : '');
}

export function resolveCommand(program: Command, json: () => boolean): void {
  program
    .command('resolve')
    .description('query a DNS server (default: ours on 127.0.0.1) with the dns2 client')
    .argument('<name>')
    .argument('[type]', 'record type', 'A')
    .option('--server <ip>', 'server address', '127.0.0.1')
    .option('-p, --port <port>', 'server port (default DNSPROXY_DNS_PORT or 53)', (v) => Number(v))
    .option('--tcp', 'query over TCP')
    .action(async (name: string, type: string, o: { server: string; port?: number; tcp?: boolean }) => {
      const { default: dns2 } = await import('dns2'); // on use: `dnsproxy serve` shares this module and never needs it
      const upper = type.toUpperCase();
      if (!(upper in dns2.Packet.TYPE)) throw new CliError(`unknown record type "${type}"`, 2);
      const port = o.port ?? Number(process.env.DNSPROXY_DNS_PORT || 53);
      const resolver = o.tcp ? dns2.TCPClient({ dns: o.server, port }) : dns2.UDPClient({ dns: o.server, port, timeout: 3000 });
      let res: DNS.Packet;
      try {
        res = await resolver(name, upper, undefined, { recursive: false });
      } catch (e) {
        throw new CliError(`no answer from ${o.server}:${port}: ${(e as Error).message}`);
      }
      const rcode = RCODES[res.header.rcode] ?? String(res.header.rcode);
      if (json()) printJson({ rcode, aa: res.header.aa === 1, answers: res.answers, authorities: res.authorities });
      else {
        console.log(`;; ${rcode}${res.header.aa ? ', authoritative' : ''}`);
        const typeNames = Object.fromEntries(Object.entries(dns2.Packet.TYPE).map(([k, v]) => [v, k])) as Record<number, string>;
        const rows = [...res.answers, ...res.authorities].map((a) => [a.name, String(a.ttl), typeNames[a.type] ?? String(a.type), dataOf(a)]);
        if (rows.length) console.log(table(['NAME', 'TTL', 'TYPE', 'DATA'], rows));
      }
      if (rcode !== 'NOERROR') process.exitCode = 1;
    });
}
