// winston, JSON lines on stdout; one child logger per module carries a `module` field.
import { Writable } from 'node:stream';
import winston from 'winston';

export type Logger = winston.Logger;
export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const root = winston.createLogger({
  level: process.env.DNSPROXY_LOG_LEVEL && (LOG_LEVELS as readonly string[]).includes(process.env.DNSPROXY_LOG_LEVEL) ? process.env.DNSPROXY_LOG_LEVEL : 'info',
  format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
  transports: [new winston.transports.Console()],
});

export function setLogLevel(level: LogLevel): void {
  root.level = level;
}

/** The level set now (threads started from here take it on). */
export function logLevel(): LogLevel {
  return root.level as LogLevel;
}

/**
 * From now on the lines logged in one event-loop turn leave in one write, when the turn ends.
 * For threads: their stdout reaches the main thread's as one message per write. Exiting writes
 * what is left.
 */
export function oneWritePerTurn(): void {
  let lines = '';
  const flush = () => {
    const out = lines;
    lines = '';
    if (out) process.stdout.write(out);
  };
  const stream = new Writable({
    decodeStrings: false,
    write(chunk: string, _encoding, done) {
      if (!lines) setImmediate(flush);
      lines += chunk;
      done();
    },
  });
  process.on('exit', flush);
  root.clear().add(new winston.transports.Stream({ stream }));
}

/** A child logger whose lines carry `module`. */
export function logger(module: string): Logger {
  return root.child({ module });
}
