// Versioned schema. Append only: migration N runs once, when PRAGMA user_version < N.
export const MIGRATIONS: readonly string[] = [
  // 1: record sets, per-zone SOA serial, API tokens.
  `
  CREATE TABLE records (
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    zone TEXT NOT NULL,
    ttl INTEGER NOT NULL,
    data TEXT NOT NULL,          -- JSON array of values, shape per type (src/model/record.ts)
    proxy TEXT,                  -- JSON {enabled, upstreams} or NULL
    service_name TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (name, type)
  ) WITHOUT ROWID;
  CREATE INDEX records_zone ON records (zone);
  CREATE TABLE zones (
    name TEXT PRIMARY KEY,
    serial INTEGER NOT NULL
  );
  CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,   -- sha256 hex of the token; the token itself is never stored
    created_at TEXT NOT NULL,
    last_used_at TEXT
  );
  `,
  // 2: explicit reverse-proxy routes (record-derived routes are computed from records).
  `
  CREATE TABLE routes (
    id TEXT PRIMARY KEY,         -- api:<hex>
    hosts TEXT NOT NULL,         -- JSON array, lower-case, no trailing dot
    path TEXT,
    upstreams TEXT NOT NULL,     -- JSON array of host:port
    tls TEXT NOT NULL,
    health_path TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
  );
  `,
  // 3: mail relay (src/mail): accounts, providers, routing rules, DKIM keys, the queue and its delivery log.
  // Queue times (next_attempt_at, lease_until, *_ms) are Unix milliseconds so due/lease checks compare integers.
  `
  CREATE TABLE mail_accounts (
    name TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,   -- scrypt$N$r$p$salt$hash (src/mail/password.ts)
    allowed_domains TEXT NOT NULL, -- JSON array of lower-case domains MAIL FROM may use
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
  );
  CREATE TABLE mail_providers (
    name TEXT PRIMARY KEY,
    type TEXT NOT NULL,            -- smtp (mx, http later)
    config TEXT NOT NULL,          -- JSON, shape per type (src/mail/schema.ts)
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
  );
  CREATE TABLE mail_rules (
    id TEXT PRIMARY KEY,
    priority INTEGER NOT NULL,     -- lower first
    sender_domain TEXT,            -- NULL = any
    recipient_domain TEXT,
    account TEXT,
    provider TEXT NOT NULL,
    fallback_provider TEXT,
    created_at TEXT NOT NULL
  );
  CREATE TABLE mail_dkim_keys (
    domain TEXT PRIMARY KEY,
    selector TEXT NOT NULL,
    private_key TEXT NOT NULL,     -- PEM
    created_at TEXT NOT NULL
  );
  CREATE TABLE mail_bodies (
    id TEXT PRIMARY KEY,
    raw BLOB NOT NULL
  );
  CREATE TABLE mail_messages (
    id TEXT PRIMARY KEY,
    body_id TEXT REFERENCES mail_bodies (id), -- NULL once every message of the body is final (body purged)
    account TEXT NOT NULL,
    mail_from TEXT NOT NULL,
    rcpt_to TEXT NOT NULL,         -- JSON array, all in recipient_domain
    recipient_domain TEXT NOT NULL,
    size INTEGER NOT NULL,
    status TEXT NOT NULL,          -- queued|sending|deferred|delivered|bounced|failed|held
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at_ms INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    lease_until INTEGER,
    lease_owner TEXT,
    provider TEXT,
    last_error TEXT,
    updated_at_ms INTEGER NOT NULL
  );
  CREATE INDEX mail_messages_due ON mail_messages (status, next_attempt_at);
  CREATE INDEX mail_messages_body ON mail_messages (body_id);
  CREATE TABLE mail_deliveries (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL REFERENCES mail_messages (id),
    at_ms INTEGER NOT NULL,
    provider TEXT,
    outcome TEXT NOT NULL,         -- delivered|transient|permanent
    code INTEGER,
    response TEXT NOT NULL,
    duration_ms INTEGER NOT NULL
  );
  CREATE INDEX mail_deliveries_message ON mail_deliveries (message_id);
  `,
  // 4: mail: split-off messages and DSNs point at the message they came from.
  `
  ALTER TABLE mail_messages ADD COLUMN parent_id TEXT; -- split from (some recipients refused), or for a DSN (mail_from '') the message it reports on
  CREATE INDEX mail_messages_parent ON mail_messages (parent_id);
  `,
  // 5: the mail relay's heartbeat, which the controller's /health reads (src/mail/heartbeat.ts).
  `
  CREATE TABLE mail_relay_heartbeat (
    id INTEGER PRIMARY KEY CHECK (id = 1), -- one relay per data dir
    owner TEXT NOT NULL,           -- the relay process (host:pid:nonce)
    started_at_ms INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,        -- last beat
    stopped_at_ms INTEGER          -- set by a clean stop, NULL while it runs
  );
  `,
  // 6: mail account API keys (several per account, for rotation) and the STARTTLS certificate an
  // operator set with `dnsproxy mail cert`, plus the one the relay presents (src/mail/store.ts).
  `
  CREATE TABLE mail_account_keys (
    id TEXT PRIMARY KEY,           -- 12 hex, also the key's visible prefix (dpk_<id>_…)
    account TEXT NOT NULL REFERENCES mail_accounts (name) ON DELETE CASCADE,
    label TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,     -- sha256 hex of the whole key; the key itself is never stored
    created_at TEXT NOT NULL,
    last_used_at TEXT,             -- written by the relay in batches (at most every few seconds)
    expires_at TEXT                -- NULL = until revoked; rotate-key --keep-old sets it on old keys
  );
  CREATE INDEX mail_account_keys_account ON mail_account_keys (account);
  CREATE TABLE mail_tls_cert (
    id INTEGER PRIMARY KEY CHECK (id = 1), -- the operator's certificate (dnsproxy mail cert)
    cert TEXT NOT NULL,            -- PEM chain, leaf first
    key TEXT NOT NULL,             -- PEM private key (like mail_dkim_keys.private_key)
    set_at_ms INTEGER NOT NULL
  );
  CREATE TABLE mail_tls_presented (
    id INTEGER PRIMARY KEY CHECK (id = 1), -- what the running relay presents at STARTTLS
    source TEXT NOT NULL,          -- operator | configured | self-signed
    cert TEXT NOT NULL,            -- PEM chain (no key)
    operator_set_at_ms INTEGER,    -- mail_tls_cert.set_at_ms it is, when source = operator
    since_ms INTEGER NOT NULL
  );
  `,
  // 7: mail: how a message came in: `submission` (an account, AUTH) or `inbound` (mail for a domain
  // we host, on the SMTP port without AUTH; account ''). Inbound mail is routed only by rules that
  // name its recipient domain and never DKIM-signed with our keys (src/mail/inbound.ts).
  `
  ALTER TABLE mail_messages ADD COLUMN source TEXT NOT NULL DEFAULT 'submission';
  `,
  // 8: mail: a counter every change to the relay's settings bumps (triggers, so writes from any
  // connection or tool count), which lets the relay cache them and read one row per lookup
  // (src/mail/store.ts). An API key's last-used time is not a setting.
  `
  CREATE TABLE mail_settings_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    v INTEGER NOT NULL
  );
  INSERT INTO mail_settings_version (id, v) VALUES (1, 0);
  ${['mail_accounts', 'mail_providers', 'mail_rules', 'mail_dkim_keys', 'mail_account_keys']
    .flatMap((t) =>
      ['INSERT', 'DELETE', t === 'mail_account_keys' ? 'UPDATE OF account, hash, expires_at' : 'UPDATE'].map(
        (op) => `CREATE TRIGGER ${t}_${op.split(' ')[0]!.toLowerCase()}_version AFTER ${op} ON ${t} BEGIN UPDATE mail_settings_version SET v = v + 1; END;`,
      ),
    )
    .join('\n  ')}
  `,
  // 9: API token scopes (src/model/token.ts). Every token from before scopes existed could do
  // everything, so it stays admin; new tokens choose theirs.
  `
  ALTER TABLE tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'admin'; -- read | write | admin
  `,
  // 10: which DNSPROXY_ADMIN_TOKEN value was bootstrapped, and the token it made: the same value
  // at the next start changes nothing (a revoked bootstrap token stays revoked), a changed one
  // replaces that token. Seeded with the newest token the older code named "bootstrap".
  `
  CREATE TABLE token_bootstrap (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    hash TEXT NOT NULL,            -- sha256 hex of the value, like tokens.hash
    token_id TEXT NOT NULL         -- the token it made (gone from tokens once revoked)
  );
  INSERT INTO token_bootstrap (id, hash, token_id)
    SELECT 1, hash, id FROM tokens WHERE name = 'bootstrap' ORDER BY created_at DESC, id DESC LIMIT 1;
  `,
  // 11: mail: a revoked API key stays listed (state revoked) instead of being deleted; the relay
  // refuses it as before. The settings-version trigger also counts revoked_at.
  `
  ALTER TABLE mail_account_keys ADD COLUMN revoked_at TEXT; -- set by revoke and by rotation; NULL while usable
  DROP TRIGGER mail_account_keys_update_version;
  CREATE TRIGGER mail_account_keys_update_version AFTER UPDATE OF account, hash, expires_at, revoked_at ON mail_account_keys BEGIN UPDATE mail_settings_version SET v = v + 1; END;
  `,
  // 12: mail-aware domains (src/mail/domains.ts): their settings, every record value each one
  // published (so removing it takes exactly those away, never a user's own values), and DKIM
  // selectors published beside the signing key: a new one before it signs, an old one in its grace.
  `
  CREATE TABLE mail_published_domains (
    domain     TEXT PRIMARY KEY, -- bare, lower case
    zone       TEXT NOT NULL,
    settings   TEXT NOT NULL,    -- JSON, src/mail/domain.ts mailDomainSettings
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
  );
  CREATE TABLE mail_domain_records (
    domain TEXT NOT NULL,
    name   TEXT NOT NULL, -- absolute owner name
    type   TEXT NOT NULL,
    value  TEXT NOT NULL, -- one value of the set, as canonical JSON
    PRIMARY KEY (name, type, value)
  );
  CREATE INDEX mail_domain_records_domain ON mail_domain_records (domain);
  CREATE TABLE mail_dkim_published (
    domain      TEXT NOT NULL,
    selector    TEXT NOT NULL,
    txt         TEXT NOT NULL,
    private_key TEXT,             -- a pending key's; NULL once retired
    at_ms       INTEGER NOT NULL, -- pending: signs from then; retired: unpublished then
    grace_ms    INTEGER NOT NULL DEFAULT 0, -- pending: how long the key it replaces stays published
    state       TEXT NOT NULL CHECK (state IN ('pending', 'retired')),
    PRIMARY KEY (domain, selector)
  );
  `,
  // 13: mail: suppressed recipients (src/mail/store.ts): an address that hard-bounced (5.1.x) or
  // that an operator added is refused at RCPT TO (550 5.1.1) until removed.
  `
  CREATE TABLE mail_suppressions (
    address    TEXT PRIMARY KEY, -- lower case
    source     TEXT NOT NULL CHECK (source IN ('bounce', 'manual')),
    reason     TEXT NOT NULL,
    created_at TEXT NOT NULL
  );
  `,
  // 14: records bound to a tailnet device (src/store/devices.ts): the device name as written, the
  // device's stable id when bound (a renamed device is followed), and the record's updated_at as
  // the binder last wrote it (any other write to the record ends the binding).
  `
  CREATE TABLE device_bindings (
    name       TEXT NOT NULL, -- absolute owner name
    type       TEXT NOT NULL CHECK (type IN ('A', 'AAAA')),
    device     TEXT NOT NULL,
    device_id  TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL,
    PRIMARY KEY (name, type)
  );
  CREATE INDEX device_bindings_device ON device_bindings (device);
  `,
  // 15: an imported zone's SOA fields (src/model/zone.ts zoneSoa, JSON; NULL: the ones from config).
  `
  ALTER TABLE zones ADD COLUMN soa TEXT;
  `,
  // 16: split-horizon DNS (src/model/view.ts): named views of client networks, and per-view values
  // of A/AAAA sets (JSON {"<view>": {"values": [...]}} or NULL).
  `
  CREATE TABLE views (
    name       TEXT PRIMARY KEY,
    cidrs      TEXT NOT NULL, -- JSON array of networks as given
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
  );
  ALTER TABLE records ADD COLUMN views TEXT;
  `,
  // 17: the certificate store (src/certs): uploaded and ACME-issued certificates, served by Caddy
  // for their names and presented by the mail relay for its host name. The key is a column here
  // (src/certs/README.md says why), never shown; `certificates_version` is bumped by triggers on
  // every write, so the relay polls one row.
  `
  CREATE TABLE certificates (
    id            TEXT PRIMARY KEY, -- crt_<16 hex>
    source        TEXT NOT NULL CHECK (source IN ('upload', 'acme-dns01')),
    names         TEXT NOT NULL,    -- JSON array of the leaf's DNS names, lower case
    chain         TEXT NOT NULL,    -- PEM, leaf first
    key           TEXT NOT NULL,    -- PEM private key: never in responses, logs or exports
    fingerprint   TEXT NOT NULL,    -- SHA-256 of the leaf, AB:CD:...
    not_before_ms INTEGER NOT NULL,
    not_after_ms  INTEGER NOT NULL,
    renewal       TEXT,             -- JSON (acme-dns01): names ordered, due_ms, failures, last_error
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
  );
  CREATE TABLE certificates_version (id INTEGER PRIMARY KEY CHECK (id = 1), v INTEGER NOT NULL);
  INSERT INTO certificates_version (id, v) VALUES (1, 0);
  CREATE TRIGGER certificates_insert_version AFTER INSERT ON certificates BEGIN UPDATE certificates_version SET v = v + 1; END;
  CREATE TRIGGER certificates_update_version AFTER UPDATE OF chain, key, names ON certificates BEGIN UPDATE certificates_version SET v = v + 1; END;
  CREATE TRIGGER certificates_delete_version AFTER DELETE ON certificates BEGIN UPDATE certificates_version SET v = v + 1; END;
  `,
  // 18: a route's auth (src/model/route-auth.ts, JSON; NULL: none): bcrypt hashes and bearer tokens, never a password.
  `
  ALTER TABLE routes ADD COLUMN auth TEXT;
  `,
  // 19: a route's headers (src/model/route-headers.ts, JSON; NULL: the defaults).
  `
  ALTER TABLE routes ADD COLUMN headers TEXT;
  `,
  // 20: a route's limits (src/model/route-limits.ts, JSON; NULL: none).
  `
  ALTER TABLE routes ADD COLUMN limits TEXT;
  `,
  // 21: a route's extra listener (src/model/route-listen.ts, JSON {"port": n} or NULL).
  `
  ALTER TABLE routes ADD COLUMN listen TEXT;
  `,
  // 22 (issue 15, balancing and backends): a route's load balancing (src/model/route-balancing.ts,
  // JSON; NULL: round robin), per-upstream weight / dead flag (src/model/route-backends.ts, JSON; NULL: none)
  // and health checks (src/model/route-health.ts, JSON; NULL: the defaults).
  `
  ALTER TABLE routes ADD COLUMN balancing TEXT;
  ALTER TABLE routes ADD COLUMN backends TEXT;
  ALTER TABLE routes ADD COLUMN health TEXT;
  `,
];
