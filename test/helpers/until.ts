/**
 * Polls `probe` every `pollMs` until it returns a value (anything but undefined); rejects after
 * `timeoutMs` naming `what` and the probe's last error. For waiting on another process (Caddy, a
 * container) whose progress sends the test no event.
 */
export async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, pollMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (last error: ${last instanceof Error ? last.message : JSON.stringify(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
