-- Times are milliseconds since the Unix epoch (BIGINT) in both stores, so the
-- same queries and row types serve Postgres and SQLite.

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE apps (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    apns       TEXT,            -- JSON credentials, never echoed
    fcm        TEXT,            -- JSON credentials, never echoed
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    app_id     TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,   -- 'server' | 'client'
    key_hash   TEXT NOT NULL UNIQUE,
    prefix     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX api_keys_app ON api_keys (app_id);

CREATE TABLE devices (
    id                 TEXT PRIMARY KEY,
    app_id             TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    platform           TEXT NOT NULL,
    token              TEXT NOT NULL,
    installation_id    TEXT,
    user_id            TEXT,
    locale             TEXT,
    timezone           TEXT,
    app_version        TEXT,
    environment        TEXT,
    metadata           TEXT,    -- JSON object
    active             BOOLEAN NOT NULL DEFAULT TRUE,
    deactivated_reason TEXT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    last_seen_at       BIGINT NOT NULL
);
CREATE UNIQUE INDEX devices_token ON devices (app_id, platform, token);
CREATE UNIQUE INDEX devices_installation ON devices (app_id, installation_id) WHERE installation_id IS NOT NULL;
CREATE INDEX devices_app_id ON devices (app_id, id);
CREATE INDEX devices_user ON devices (app_id, user_id, id);

CREATE TABLE device_groups (
    app_id    TEXT NOT NULL,
    name      TEXT NOT NULL,
    device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    PRIMARY KEY (app_id, name, device_id)
);
CREATE INDEX device_groups_device ON device_groups (device_id);
