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
];
