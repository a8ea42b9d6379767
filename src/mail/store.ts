// The relay's settings in SQLite: accounts, providers, routing rules and DKIM keys,
// account API keys, suppressions and the STARTTLS certificate, one file per aggregate under store/. The
// controller (API, CLI) writes them, the relay reads them on every session/delivery, so a change
// applies to the next connection or attempt without a restart. Every write is one statement.
// MailStore is their sum (a chain of classes sharing store/base.ts's connection and settings cache),
// so callers keep one handle.
import { CertStore } from './store/certs.js';

export type { Suppression } from './store/suppressions.js';
export type { DkimKey } from './store/dkim.js';
export type { OperatorCert, PresentedCert, TlsSource } from './store/certs.js';

export class MailStore extends CertStore {}
