// A fake tailscaled LocalAPI on a unix socket: `GET /localapi/v0/status` answers the ipnstate.Status
// JSON shape tailscaled sends (Self, Peer keyed by node public key, PeerStatus fields), built from
// a device list the test changes. Like tailscaled it refuses a Host other than local-tailscaled.sock.
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { tempDir } from './tmp.js';

export interface FakeDevice {
  /** Stable node id (`n…CNTRL`). */
  id: string;
  hostName: string;
  /** MagicDNS name without the tailnet suffix; default: hostName lower-cased. */
  dnsLabel?: string;
  ips: string[];
  online?: boolean;
  lastSeen?: string;
}

export const TAILNET_SUFFIX = 'tail1234.ts.net';
/** Go's zero time.Time as tailscaled prints "never". */
const ZERO_TIME = '0001-01-01T00:00:00Z';

function peerStatus(d: FakeDevice, self: boolean): Record<string, unknown> {
  return {
    ID: d.id,
    PublicKey: `nodekey:${d.id.padEnd(64, '0').slice(0, 64)}`,
    HostName: d.hostName,
    DNSName: `${d.dnsLabel ?? d.hostName.toLowerCase()}.${TAILNET_SUFFIX}.`,
    OS: 'linux',
    UserID: 1,
    TailscaleIPs: d.ips,
    AllowedIPs: d.ips.map((ip) => `${ip}/${ip.includes(':') ? 128 : 32}`),
    Addrs: null,
    CurAddr: '',
    Relay: 'fra',
    RxBytes: 0,
    TxBytes: 0,
    Created: '2026-01-01T00:00:00Z',
    LastWrite: ZERO_TIME,
    LastSeen: d.lastSeen ?? ZERO_TIME,
    LastHandshake: ZERO_TIME,
    Online: self || d.online !== false,
    ExitNode: false,
    ExitNodeOption: false,
    Active: false,
    InNetworkMap: true,
    InMagicSock: !self,
    InEngine: !self,
  };
}

export interface FakeLocalApi {
  socket: string;
  self: FakeDevice;
  peers: FakeDevice[];
  /** Status requests answered. */
  requests: number;
  /** Answer this HTTP status instead (tailscaled down or refusing). */
  failWith: number | null;
  /** The status JSON as it would be sent now. */
  status(): Record<string, unknown>;
  close(): Promise<void>;
}

export async function startFakeLocalApi(self: FakeDevice, peers: FakeDevice[]): Promise<FakeLocalApi> {
  const tmp = tempDir('dnsproxy-ts-');
  const socket = join(tmp.dir, 'tailscaled.sock');
  const api: FakeLocalApi = {
    socket,
    self,
    peers,
    requests: 0,
    failWith: null,
    status: () => ({
      Version: '1.80.0-t0000000',
      TUN: true,
      BackendState: 'Running',
      AuthURL: '',
      TailscaleIPs: api.self.ips,
      Self: peerStatus(api.self, true),
      Health: [],
      MagicDNSSuffix: TAILNET_SUFFIX,
      CurrentTailnet: { Name: 'example.com', MagicDNSSuffix: TAILNET_SUFFIX, MagicDNSEnabled: true },
      CertDomains: null,
      Peer: Object.fromEntries(api.peers.map((p) => [`nodekey:${p.id.padEnd(64, '0').slice(0, 64)}`, peerStatus(p, false)])),
      User: { '1': { ID: 1, LoginName: 'someone@example.com', DisplayName: 'Someone', ProfilePicURL: '' } },
      ClientVersion: null,
    }),
    close: () => new Promise<void>((resolve) => server.close(() => (tmp.cleanup(), resolve()))),
  };
  const server: Server = createServer((req, res) => {
    if (req.headers.host !== 'local-tailscaled.sock') return void res.writeHead(403).end('invalid localapi request host\n');
    if (req.method !== 'GET' || req.url !== '/localapi/v0/status') return void res.writeHead(404).end('404 page not found\n');
    api.requests++;
    if (api.failWith !== null) return void res.writeHead(api.failWith).end('tailscaled is not running\n');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(api.status(), null, '\t'));
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(socket, resolve));
  return api;
}

/** Timers whose callbacks run only when the test fires them (the device poll). */
export class ManualTimers {
  private next = 1;
  readonly pending = new Map<number, () => void>();
  setTimeout = (fn: () => void): unknown => {
    const id = this.next++;
    this.pending.set(id, fn);
    return id;
  };
  clearTimeout = (h: unknown): void => void this.pending.delete(h as number);
  /** Runs every pending callback once (one poll); returns how many ran. */
  fire(): number {
    const due = [...this.pending.values()];
    this.pending.clear();
    due.forEach((fn) => fn());
    return due.length;
  }
}
