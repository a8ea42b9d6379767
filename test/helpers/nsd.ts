// NSD (Debian's `nsd`) as a reference server for differential tests: one zone file, a private
// config in a temp dir, a free loopback port, run in the foreground (`nsd -d`) as an
// unprivileged user. NSD compiles the zone itself; nsd-checkconf checks the config first.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';
import { freePort } from './caddy.js';

/** Where Debian puts the binaries; root's PATH has it, a plain user's may not. */
const DIRS = ['/usr/sbin', '/usr/bin', '/sbin'];
/** `nobody`: NSD needs no privilege on a high port. */
const NOBODY = 65534;
/** NSD loads a few hundred names in well under a second; a loaded CI box may need more. */
const START_MS = 20_000;

function which(cmd: string): string | null {
  for (const dir of [...(process.env.PATH ?? '').split(':'), ...DIRS]) if (dir && existsSync(join(dir, cmd))) return join(dir, cmd);
  return null;
}

/** Why NSD cannot run here, or null. */
export function nsdMissing(): string | null {
  if (!which('nsd') || !which('nsd-checkconf')) return 'nsd is not installed (Debian package nsd; the test command installs it)';
  return null;
}

export interface Nsd {
  port: number;
  stop(): Promise<void>;
  log(): string;
}

/** Starts NSD serving `zone` from `text` on 127.0.0.1; resolves once it answers the zone's SOA. */
export async function startNsd(zone: string, text: string): Promise<Nsd> {
  const nsd = which('nsd') as string;
  const check = which('nsd-checkconf') as string;
  const dir = mkdtempSync(join(tmpdir(), 'dnsproxy-nsd-'));
  const port = await freePort();
  const conf = join(dir, 'nsd.conf');
  writeFileSync(join(dir, 'zone'), text);
  writeFileSync(
    conf,
    `# Everything in this temp dir: no privilege drop by NSD itself, no chroot, no database file.
server:
    ip-address: 127.0.0.1@${port}
    port: ${port}
    do-ip4: yes
    do-ip6: no
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "${dir}"
    database: ""
    zonelistfile: "${dir}/zone.list"
    xfrdfile: "${dir}/xfrd.state"
    xfrdir: "${dir}"
    pidfile: "${dir}/nsd.pid"
    logfile: "${dir}/nsd.log"
    zonefiles-write: 0
    verbosity: 1
    hide-version: yes
    # Debian's build limits responses per source address; every query here comes from one.
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
remote-control:
    control-enable: no
zone:
    name: "${zone}"
    zonefile: "${dir}/zone"
    provide-xfr: 127.0.0.1 NOKEY
`,
  );
  execFileSync(check, [conf], { stdio: 'pipe' });
  const root = process.getuid?.() === 0;
  if (root) {
    chmodSync(dir, 0o755);
    for (const f of [dir, conf, join(dir, 'zone')]) chownSync(f, NOBODY, NOBODY);
  }
  const child: ChildProcess = spawn(nsd, ['-d', '-c', conf], { stdio: 'ignore', detached: true, ...(root ? { uid: NOBODY, gid: NOBODY } : {}) });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const log = () => {
    try {
      return readFileSync(join(dir, 'nsd.log'), 'utf8');
    } catch {
      return '';
    }
  };
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      // Its own process group (detached): the server child it forks goes with it.
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        /* already gone */
      }
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + START_MS;
  let dead = false;
  void exited.then(() => (dead = true));
  while (!(await soaAnswers(port, zone))) {
    if (dead || Date.now() > deadline) {
      const why = `nsd did not start: ${log().trim().split('\n').slice(-5).join(' | ')}`;
      await stop();
      throw new Error(why);
    }
  }
  return { port, stop, log };
}

/** One SOA query; true when a NOERROR answer comes within 200 ms. */
function soaAnswers(port: number, zone: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const timer = setTimeout(() => done(false), 200);
    const done = (ok: boolean) => {
      clearTimeout(timer);
      s.close();
      resolve(ok);
    };
    s.on('message', (m) => {
      try {
        const p = dnsPacket.decode(m) as { rcode?: string; answers?: unknown[] };
        done(p.rcode === 'NOERROR' && (p.answers?.length ?? 0) > 0);
      } catch {
        done(false);
      }
    });
    s.on('error', () => done(false));
    s.send(dnsPacket.encode({ type: 'query', id: 1, questions: [{ name: zone, type: 'SOA', class: 'IN' }] }), port, '127.0.0.1');
  });
}
