// Where the device list comes from: tailscaled's LocalAPI on its unix socket, or the tailscale CLI.
import { execFile } from 'node:child_process';
import { request } from 'node:http';

/** tailscaled's LocalAPI accepts requests only with this Host (its `local-tailscaled.sock` check). */
export const LOCALAPI_HOST = 'local-tailscaled.sock';
export const STATUS_PATH = '/localapi/v0/status';
/** A status larger than this is refused (a tailnet of 10,000 devices is ~10 MiB). */
export const MAX_STATUS_BYTES = 32 * 1024 * 1024;
/** A poll that takes longer than this failed (tailscaled answers status from memory). */
export const STATUS_TIMEOUT_MS = 10_000;

/** Reads the status JSON once; rejects with a reason. */
export type StatusSource = () => Promise<unknown>;

/** `GET /localapi/v0/status` on tailscaled's socket (default /var/run/tailscale/tailscaled.sock). */
export function localApiSource(socketPath: string, timeoutMs = STATUS_TIMEOUT_MS): StatusSource {
  return () =>
    new Promise((resolve, reject) => {
      const req = request({ socketPath, path: STATUS_PATH, method: 'GET', headers: { Host: LOCALAPI_HOST, Accept: 'application/json' }, timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_STATUS_BYTES) req.destroy(new Error(`status larger than ${MAX_STATUS_BYTES} bytes`));
          else chunks.push(c);
        });
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200) return reject(new Error(`LocalAPI answered ${res.statusCode}: ${text.slice(0, 200).trim()}`));
          try {
            resolve(JSON.parse(text));
          } catch (e) {
            reject(new Error(`LocalAPI answer is not JSON: ${(e as Error).message}`));
          }
        });
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`LocalAPI did not answer within ${timeoutMs} ms`)));
      req.on('error', (e) => reject(new Error(`LocalAPI at ${socketPath}: ${e.message}`)));
      req.end();
    });
}

/** `<bin> status --json` (the same JSON as the LocalAPI). */
export function cliSource(bin: string, timeoutMs = STATUS_TIMEOUT_MS): StatusSource {
  return () =>
    new Promise((resolve, reject) => {
      execFile(bin, ['status', '--json'], { timeout: timeoutMs, maxBuffer: MAX_STATUS_BYTES, encoding: 'utf8' }, (err, stdout, stderr) => {
        if (err) return reject(new Error(`${bin} status --json: ${(stderr || err.message).trim().slice(0, 200)}`));
        try {
          resolve(JSON.parse(stdout));
        } catch (e) {
          reject(new Error(`${bin} status --json printed no JSON: ${(e as Error).message}`));
        }
      });
    });
}
