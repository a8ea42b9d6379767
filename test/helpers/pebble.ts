// Test helper for a real ACME CA: Debian's `pebble` (2.4) on free loopback ports, in its own temp
// dir with its own config file. Its validation authority asks OUR DNS server (`-dnsserver`) for
// the names it validates and dials HTTP-01 on `httpPort` (TLS-ALPN-01 on `tlsPort`), so one
// issuance exercises DNS + Caddy + ACME together.
//
// Pebble serves its ACME directory over HTTPS and the Debian package ships no certificate for
// that listener: we make a throwaway CA ("the HTTPS root") and a 127.0.0.1/localhost leaf with
// openssl. Pebble makes a fresh issuing root on every start (`/roots/0` on its management port):
// a test verifies served chains against that one.
//
// Readiness is event-driven: startPebble() resolves when pebble logs its directory line (it logs
// it after both listeners are bound), and rejects at once when pebble exits first.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePorts } from './caddy.js';
import { tempDir } from './tmp.js';

export const PEBBLE_BIN = process.env.PEBBLE_BIN ?? 'pebble';
const OPENSSL_BIN = 'openssl';
/** Pebble makes its RSA issuing keys at start (~1 s here); a loaded 2-core box may need many times that. */
const START_TIMEOUT_MS = 30_000;
/** Pebble exits at once on SIGTERM; we do not wait longer than this before SIGKILL. */
const STOP_TIMEOUT_MS = 5_000;
/** Kept output per process, so a failing test can print what pebble said. */
const MAX_OUTPUT_CHARS = 64_000;
/** Pebble logs this line last, after its management and ACME listeners are bound. */
const READY_LINE = /ACME directory available at: (\S+)/;
/** The throwaway HTTPS CA and leaf outlive any test run. */
const CERT_DAYS = 7;

let pebbleInstalled: boolean | undefined;
/** True when the `pebble` and `openssl` binaries run; integration tests call `this.skip()` otherwise. */
export function hasPebble(): boolean {
  pebbleInstalled ??=
    spawnSync(PEBBLE_BIN, ['-h'], { stdio: 'ignore' }).error === undefined && spawnSync(OPENSSL_BIN, ['version'], { stdio: 'ignore' }).status === 0;
  return pebbleInstalled;
}

export interface PebbleOptions {
  /** `host:port` of the DNS server pebble's validation authority asks (ours). */
  dnsServer: string;
  /** The port pebble dials for HTTP-01 (Caddy's HTTP listener). A free port when omitted. */
  httpPort?: number;
  /** The port pebble dials for TLS-ALPN-01 (Caddy's HTTPS listener). A free port when omitted. */
  tlsPort?: number;
  /** Extra environment for pebble (e.g. `PEBBLE_VA_ALWAYS_VALID: '1'`); overrides the defaults below. */
  env?: Record<string, string>;
}

export interface RunningPebble {
  /** `https://127.0.0.1:<port>/dir`: the ACME directory URL. */
  directoryUrl: string;
  /** PEM of the CA that signed pebble's own HTTPS certificate (trust it to talk to the directory). */
  httpsRootPem: string;
  /** The same PEM as a file in pebble's temp dir (for Caddy's `trusted_roots_pem_files`). */
  httpsRootFile: string;
  /** PEM of the root that signs the certificates pebble issues (`/roots/0`): verify served chains against it. */
  issuingRootPem: string;
  /** `https://127.0.0.1:<port>`: pebble's management API (`/roots/0`, `/intermediates/0`, ...). */
  managementUrl: string;
  httpPort: number;
  tlsPort: number;
  pid: number;
  /** pebble's temp dir (config, HTTPS certificate and key); removed by stop(). */
  dir: string;
  /** stdout+stderr so far (last 64 kB). */
  output(): string;
  /** GET a path of the management API (trusting the HTTPS root); rejects on a non-2xx status. */
  management(path: string): Promise<string>;
  /** SIGTERM (SIGKILL after 5 s) and remove the temp dir. Safe to call more than once. */
  stop(): Promise<void>;
}

/** One GET over HTTPS trusting only `ca`; the body, or a rejection naming the status. */
export function httpsGet(url: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        if (status < 200 || status > 299) reject(new Error(`GET ${url} answered ${status}: ${body}`));
        else resolve(body);
      });
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
  });
}

/** A throwaway CA and a leaf for 127.0.0.1/localhost signed by it, as PEM files in `dir`. */
async function makeHttpsCertificate(dir: string): Promise<{ caFile: string; certFile: string; keyFile: string }> {
  const run = (args: string[]) => promisify(execFile)(OPENSSL_BIN, args, { cwd: dir });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await run(['req', '-x509', ...ec, '-keyout', 'https-ca.key', '-out', 'https-ca.pem', '-days', String(CERT_DAYS), '-subj', '/CN=dnsproxy test pebble HTTPS root']);
  await run(['req', ...ec, '-keyout', 'https.key', '-out', 'https.csr', '-subj', '/CN=localhost']);
  writeFileSync(join(dir, 'https.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
  await run(['x509', '-req', '-in', 'https.csr', '-CA', 'https-ca.pem', '-CAkey', 'https-ca.key', '-CAcreateserial', '-out', 'https.pem', '-days', String(CERT_DAYS), '-extfile', 'https.ext']);
  return { caFile: join(dir, 'https-ca.pem'), certFile: join(dir, 'https.pem'), keyFile: join(dir, 'https.key') };
}

/**
 * Starts pebble on 127.0.0.1 (ACME and management listeners on free ports) validating through
 * `opts.dnsServer`, and resolves once its directory is up and its issuing root is read. Defaults:
 * no validation sleeps, no rejected nonces, real validation, no authorization reuse (every order
 * validates). The caller must call stop().
 */
export async function startPebble(opts: PebbleOptions): Promise<RunningPebble> {
  const tmp = tempDir('dnsproxy-pebble-');
  let proc: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let out = '';
  let removed = false;

  const stop = async () => {
    const p = proc;
    if (p && p.exitCode === null && p.signalCode === null) {
      p.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const late = await Promise.race([exited.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), STOP_TIMEOUT_MS)))]);
      clearTimeout(timer);
      if (late) {
        p.kill('SIGKILL');
        await exited;
      }
    }
    if (!removed) tmp.cleanup();
    removed = true;
  };

  try {
    const want = 2 + (opts.httpPort === undefined ? 1 : 0) + (opts.tlsPort === undefined ? 1 : 0);
    const ports = await freePorts(want);
    const [acmePort, mgmtPort] = ports as [number, number];
    const rest = ports.slice(2);
    const httpPort = opts.httpPort ?? rest.shift()!;
    const tlsPort = opts.tlsPort ?? rest.shift()!;
    const { caFile, certFile, keyFile } = await makeHttpsCertificate(tmp.dir);
    const configFile = join(tmp.dir, 'pebble.json');
    writeFileSync(
      configFile,
      JSON.stringify({
        pebble: {
          listenAddress: `127.0.0.1:${acmePort}`,
          managementListenAddress: `127.0.0.1:${mgmtPort}`,
          certificate: certFile,
          privateKey: keyFile,
          httpPort,
          tlsPort,
          ocspResponderURL: '',
          externalAccountBindingRequired: false,
        },
      }),
    );
    const env = {
      ...process.env,
      PEBBLE_VA_NOSLEEP: '1',
      PEBBLE_WFE_NONCEREJECT: '0',
      PEBBLE_VA_ALWAYS_VALID: '0',
      PEBBLE_AUTHZREUSE: '0',
      ...opts.env,
    };
    const p = spawn(PEBBLE_BIN, ['-config', configFile, '-dnsserver', opts.dnsServer, '-strict=false'], { env, cwd: tmp.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    proc = p;
    exited = new Promise((resolve) => p.once('exit', () => resolve()));

    const directoryUrl = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`pebble did not come up within ${START_TIMEOUT_MS} ms:\n${out}`)), START_TIMEOUT_MS);
      const keep = (chunk: Buffer) => {
        out = (out + chunk.toString()).slice(-MAX_OUTPUT_CHARS);
        const m = READY_LINE.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      };
      p.stdout.on('data', keep);
      p.stderr.on('data', keep);
      p.once('error', (e) => {
        clearTimeout(timer);
        reject(new Error(`cannot start ${PEBBLE_BIN}: ${e.message}`));
      });
      p.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`pebble exited (${signal ?? code}) before its directory was up:\n${out}`));
      });
    });

    const httpsRootPem = readFileSync(caFile, 'utf8');
    const managementUrl = `https://127.0.0.1:${mgmtPort}`;
    const management = (path: string) => httpsGet(`${managementUrl}${path}`, httpsRootPem);
    const issuingRootPem = await management('/roots/0');
    return {
      directoryUrl,
      httpsRootPem,
      httpsRootFile: caFile,
      issuingRootPem,
      managementUrl,
      httpPort,
      tlsPort,
      pid: p.pid ?? -1,
      dir: tmp.dir,
      output: () => out,
      management,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
