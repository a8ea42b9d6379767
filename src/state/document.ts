// The state file's full schema: the model's envelope and sections (src/model/state.ts) plus the
// mail sections, whose entries are the mail API's bodies with every secret optional (an export
// leaves them out; apply keeps the stored one when the file does).
import { z } from 'zod';
import { accountInput, mailDomain, mailName, ruleInput } from '../model/mail.js';
import { mailDomainSettings } from '../mail/domains/domain.js';
import { MAX_ENTRIES, stateDocument } from '../model/state.js';

const list = <T extends z.ZodType>(entry: T) => z.array(entry).max(MAX_ENTRIES).default([]);

/** An account: its password is optional (left out: kept; a new account without one cannot log in until it is set). */
export const accountEntry = accountInput.extend({ password: accountInput.shape.password.optional() }).strict();
export type AccountEntry = z.infer<typeof accountEntry>;

/**
 * A provider: `config` is checked against the provider schema once the stored secrets are merged
 * in (apply.ts), so a file may leave out `auth.pass`, `auth.token` and `auth.value`.
 */
export const providerEntry = z.object({ name: mailName, config: z.record(z.string(), z.unknown()) }).strict();
export type ProviderEntry = z.infer<typeof providerEntry>;

export const mailDomainEntry = z.object({ domain: mailDomain, settings: mailDomainSettings.prefault({}) }).strict();
export type MailDomainEntry = z.infer<typeof mailDomainEntry>;

export const mailSection = z
  .object({
    domains: list(mailDomainEntry),
    accounts: list(accountEntry),
    providers: list(providerEntry),
    rules: list(ruleInput),
  })
  .strict();

export const stateFile = stateDocument({ mail: mailSection.prefault({}) });
export type StateFile = z.infer<typeof stateFile>;
