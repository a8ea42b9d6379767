// Delivery providers (smtp, mx, http), checked against the allowed destinations when saved.
import { AppError } from '../../errors.js';
import { prepared } from '../../store/db.js';
import { providerDestinationIssues } from '../delivery/destination.js';
import type { z } from 'zod';
import { providerConfig, type Provider, type Rule } from '../../model/mail.js';
import { through } from './base.js';
import { AccountStore } from './accounts.js';

export abstract class ProviderStore extends AccountStore {
  /** The routing rules (rules.ts): a provider a rule names cannot be removed. */
  abstract rules(): readonly Rule[];

  // ---- providers ----

  /**
   * Creates or replaces a provider; its config is parsed here, so omitted settings get their
   * defaults (e.g. max_connections). A host or URL the relay would not connect to (destination.ts:
   * loopback, link-local, metadata, localhost, `ownAddresses`) without allow_private, or an smtp
   * host that is no host name or IP address, is a 400 naming the field, and nothing is written.
   */
  putProvider(input: { name: string; config: z.input<typeof providerConfig> }, opts: { ownAddresses?: readonly string[] } = {}): Provider {
    const config = providerConfig.parse(input.config);
    const issues = providerDestinationIssues(config, new Set(opts.ownAddresses));
    if (issues.length) throw new AppError('invalid_body', undefined, issues);
    const at = this.now().toISOString();
    this.write(
      `INSERT INTO mail_providers (name, type, config, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET type = excluded.type, config = excluded.config, updated_at = excluded.updated_at`,
    )
    .run(input.name, config.type, JSON.stringify(config), at, at);
    return { name: input.name, config };
  }

  providers(): Provider[] {
    const rows = prepared(this.db, 'SELECT name, config FROM mail_providers ORDER BY name').all() as { name: string; config: string }[];
    return rows.map((r) => ({ name: r.name, config: providerConfig.parse(JSON.parse(r.config)) }));
  }

  /** Cached, like account(). */
  provider(name: string): Provider | undefined {
    return through(this.cached().providers, name, () => this.readProvider(name));
  }

  private readProvider(name: string): Provider | undefined {
    const row = prepared(this.db, 'SELECT config FROM mail_providers WHERE name = ?').get(name) as { config: string } | undefined;
    return row && { name, config: providerConfig.parse(JSON.parse(row.config)) };
  }

  /** Refused (409) while a rule names the provider. */
  removeProvider(name: string): void {
    const used = this.rules().filter((r) => r.provider === name || r.fallback_provider === name);
    if (used.length) throw new AppError('conflict', `provider ${name} is used by rule(s) ${used.map((r) => r.id).join(', ')}; remove them first`);
    if (this.write('DELETE FROM mail_providers WHERE name = ?').run(name).changes === 0) throw new AppError('not_found', `no provider ${name}`);
  }
}
