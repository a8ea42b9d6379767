// A minimal WebSocket echo backend (node:http upgrade, RFC 6455 framing) and a client that can
// set the Host header, for proxying tests through Caddy. Text frames only, ≤ 64 KiB payloads.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** One frame from `buf` at 0: its opcode, payload (unmasked) and length in bytes, or null when incomplete. */
function readFrame(buf: Buffer): { opcode: number; payload: Buffer; size: number } | null {
  if (buf.length < 2) return null;
  const opcode = buf[0]! & 0x0f;
  const masked = (buf[1]! & 0x80) !== 0;
  let len = buf[1]! & 0x7f;
  let at = 2;
  if (len === 126) {
    if (buf.length < 4) return null;
    len = buf.readUInt16BE(2);
    at = 4;
  } else if (len === 127) {
    if (buf.length < 10) return null;
    len = Number(buf.readBigUInt64BE(2));
    at = 10;
  }
  const mask = masked ? buf.subarray(at, at + 4) : null;
  if (masked) at += 4;
  if (buf.length < at + len) return null;
  const payload = Buffer.from(buf.subarray(at, at + len));
  if (mask) for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i % 4]!;
  return { opcode, payload, size: at + len };
}

function frame(opcode: number, payload: Buffer, mask: boolean): Buffer {
  const head = payload.length < 126 ? Buffer.from([0x80 | opcode, payload.length]) : Buffer.from([0x80 | opcode, 126, payload.length >> 8, payload.length & 0xff]);
  if (!mask) return Buffer.concat([head, payload]);
  head[1]! |= 0x80;
  const key = randomBytes(4);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i]! ^= key[i % 4]!;
  return Buffer.concat([head, key, body]);
}

/** Calls `onFrame` for each complete frame arriving on `socket`. */
function frames(socket: net.Socket, onFrame: (opcode: number, payload: Buffer) => void, initial: Buffer = Buffer.alloc(0)): void {
  let buf = initial;
  const drain = () => {
    for (let f = readFrame(buf); f; f = readFrame(buf)) {
      buf = buf.subarray(f.size);
      onFrame(f.opcode, f.payload);
    }
  };
  socket.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    drain();
  });
  drain();
}

export interface WsEcho {
  name: string;
  /** `127.0.0.1:<port>` */
  dial: string;
  port: number;
  /** Upgraded sessions open now. */
  sessions(): number;
  close(): Promise<void>;
}

/** Answers plain HTTP with its name, and echoes each text message as `<name>:<message>`. */
export async function startWsEcho(name: string): Promise<WsEcho> {
  const open = new Set<net.Socket>();
  const server = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end(name));
  server.on('upgrade', (req, socket: net.Socket, head: Buffer) => {
    const key = req.headers['sec-websocket-key'];
    if (typeof key !== 'string') return socket.destroy();
    const accept = createHash('sha1').update(key + GUID).digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    socket.on('error', () => socket.destroy());
    frames(
      socket,
      (opcode, payload) => {
        if (opcode === 0x1) socket.write(frame(0x1, Buffer.from(`${name}:${payload.toString()}`), false));
        else if (opcode === 0x9) socket.write(frame(0xa, payload, false));
        else if (opcode === 0x8) socket.end(frame(0x8, payload, false));
      },
      head,
    );
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    name,
    port,
    dial: `127.0.0.1:${port}`,
    sessions: () => open.size,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface WsClient {
  /** Sends `text` and resolves with the next text message; rejects if the session ends first or after `timeoutMs`. */
  ask(text: string, timeoutMs?: number): Promise<string>;
  /** Resolves when the session has ended (closed by the other side or the connection dropped). */
  ended: Promise<void>;
  isOpen(): boolean;
  close(): void;
}

/** Opens a WebSocket session to 127.0.0.1:`port` with `Host: host`; over TLS (SNI `host`, certificate not verified) when `secure`. */
export function wsConnect(port: number, host: string, path = '/', secure = false): Promise<WsClient> {
  return new Promise((resolve, reject) => {
    const socket = secure ? tls.connect({ port, host: '127.0.0.1', servername: host, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }) : net.connect(port, '127.0.0.1');
    const key = randomBytes(16).toString('base64');
    let open = false;
    let waiting: { resolve: (t: string) => void; reject: (e: Error) => void } | null = null;
    let endedResolve!: () => void;
    const ended = new Promise<void>((r) => (endedResolve = r));
    const end = () => {
      open = false;
      waiting?.reject(new Error('websocket session ended'));
      waiting = null;
      endedResolve();
    };
    socket.on('error', (e: Error) => (open ? end() : reject(e)));
    socket.on('close', end);
    socket.once(secure ? 'secureConnect' : 'connect', () =>
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`),
    );
    let head = Buffer.alloc(0);
    const onHead = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const at = head.indexOf('\r\n\r\n');
      if (at < 0) return;
      socket.off('data', onHead);
      const status = head.subarray(0, head.indexOf('\r\n')).toString();
      if (!/^HTTP\/1\.1 101/.test(status)) {
        socket.destroy();
        return reject(new Error(`no upgrade: ${status}`));
      }
      open = true;
      frames(
        socket,
        (opcode, payload) => {
          if (opcode === 0x1) {
            waiting?.resolve(payload.toString());
            waiting = null;
          } else if (opcode === 0x8) socket.end();
        },
        head.subarray(at + 4),
      );
      resolve({
        ask: (text, timeoutMs = 5000) =>
          new Promise<string>((res, rej) => {
            if (!open) return rej(new Error('websocket session ended'));
            const timer = setTimeout(() => rej(new Error(`no echo within ${timeoutMs} ms`)), timeoutMs);
            waiting = {
              resolve: (t) => (clearTimeout(timer), res(t)),
              reject: (e) => (clearTimeout(timer), rej(e)),
            };
            socket.write(frame(0x1, Buffer.from(text), true));
          }),
        ended,
        isOpen: () => open,
        close: () => socket.end(frame(0x8, Buffer.alloc(0), true)),
      });
    };
    socket.on('data', onHead);
  });
}
