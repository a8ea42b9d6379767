// The `queued` log line of an accepted message (module mail.smtp), written once the message is
// committed by the thread that committed it (the writer thread, or the relay's only thread in tests).
import { logger } from '../../log/index.js';

/** The line's fields (session, account, recipients, size); the message ids are added once committed. */
export type QueuedLine = Record<string, string | number>;

const log = logger('mail.smtp');

export function logQueued(line: QueuedLine, ids: string[]): void {
  log.info('queued', { ...line, ids });
}
