// Routing rules: which provider (and fallback) carries which mail.
import { randomBytes } from 'node:crypto';
import { AppError, fieldError } from '../../errors.js';
import { prepared } from '../../store/db.js';
import type { Rule, RuleInput } from '../../model/mail.js';
import { ProviderStore } from './providers.js';

export class RuleStore extends ProviderStore {
  // ---- rules ----

  /** Adds a rule; its provider and fallback must exist (400 naming the field otherwise). */
  addRule(input: RuleInput): Rule {
    for (const field of ['provider', 'fallback_provider'] as const) {
      const name = input[field];
      if (name !== null && !this.provider(name)) throw fieldError(field, `no provider named ${name}`);
    }
    const rule: Rule = { ...input, id: randomBytes(4).toString('hex') };
    this.write(
      `INSERT INTO mail_rules (id, priority, sender_domain, recipient_domain, account, provider, fallback_provider, created_at)
       VALUES (@id, @priority, @sender_domain, @recipient_domain, @account, @provider, @fallback_provider, @created_at)`,
    )
    .run({ ...rule, created_at: this.now().toISOString() });
    return rule;
  }

  /** Rules in evaluation order: priority, then creation. Cached, like account(). */
  rules(): readonly Rule[] {
    const cache = this.cached();
    return (cache.rules ??= this.readRules());
  }

  private readRules(): Rule[] {
    return prepared(this.db, 'SELECT id, priority, sender_domain, recipient_domain, account, provider, fallback_provider FROM mail_rules ORDER BY priority, created_at, id')
      .all() as Rule[];
  }

  /** The rule with this id (404 when none). */
  rule(id: string): Rule {
    const rule = this.rules().find((r) => r.id === id);
    if (!rule) throw new AppError('not_found', `no rule ${id}`);
    return rule;
  }

  /** Replaces rule `id` (keeping its id and place among equal priorities); providers checked as for addRule. */
  putRule(id: string, input: RuleInput): Rule {
    this.rule(id);
    for (const field of ['provider', 'fallback_provider'] as const) {
      const name = input[field];
      if (name !== null && !this.provider(name)) throw fieldError(field, `no provider named ${name}`);
    }
    this.write('UPDATE mail_rules SET priority = @priority, sender_domain = @sender_domain, recipient_domain = @recipient_domain, account = @account, provider = @provider, fallback_provider = @fallback_provider WHERE id = @id').run({ ...input, id });
    return { ...input, id };
  }

  removeRule(id: string): void {
    if (this.write('DELETE FROM mail_rules WHERE id = ?').run(id).changes === 0) throw new AppError('not_found', `no rule ${id}`);
  }
}
