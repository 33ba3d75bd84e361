"""The store's schema as forward migrations: version N's statements turn a version N-1 database
into version N. Both backends run the same SQL (portable types only: TEXT, INTEGER, BIGINT,
DOUBLE PRECISION); a database newer than this code is refused rather than guessed at.

Version 1:

    conversations  id PK · title · system · created_at · updated_at · turns · cost_micros · models (JSON)
                   · lease_owner · lease_until           (who is writing a turn, until when)
    turns          (conversation_id → conversations, seq) PK · status · messages (JSON) · model_requested
                   · model_served · reply · prompt_tokens · completion_tokens · cost_micros · latency_ms
                   · finish_reason · error_word · prompt_estimate · created_at · updated_at
    spend_ledger   id PK · period · tool · status (reserved|settled|released) · reserved_micros
                   · settled_micros · created_at · updated_at
    image_jobs     idempotency_key PK · job_id (unique) · model · prompt_words · status · files (JSON)
                   · created_at · updated_at

Version 2: image_jobs · request_fingerprint (SHA-256 of model, prompt, n, size, image_url).

Version 3: spend_ledger · model · input_tokens · output_tokens (what `kyma://spend` lists per call;
NULL on rows written before, and tokens NULL for image jobs).

Version 4: spend_ledger · expires_at (a reservation not settled by then was left by a process that
died: it stops holding the budget; NULL on rows written before: created_at + `LEGACY_RESERVATION_SECONDS`).

Version 5: confirm_tokens  token PK · fingerprint (of the call it confirms) · expires_at: the one-time
`confirm` tokens of KYMA_CONFIRM_ABOVE_USD, shared by processes and replicas.

Version 6: a cost Kyma did not report is unknown, not $0. turns · cost_micros is nullable (NULL: not
reported; the table is rebuilt, rows kept, since SQLite cannot drop a NOT NULL) and conversations ·
unknown_cost_turns counts a thread's ended turns of unknown cost beside cost_micros, the sum of the
known ones. Rows written before keep what they said (an unreported cost was stored as 0 then).
"""

from __future__ import annotations

_TURNS_V1 = (
    "conversation_id, seq, status, messages, model_requested, model_served, reply, prompt_tokens, "
    "completion_tokens, cost_micros, latency_ms, finish_reason, error_word, prompt_estimate, created_at, updated_at"
)
"""The columns of `turns` since version 1, which version 6 copies into its rebuilt table."""

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE conversations (
            id TEXT PRIMARY KEY,
            title TEXT NOT NULL,
            system TEXT,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            turns INTEGER NOT NULL DEFAULT 0,
            cost_micros BIGINT NOT NULL DEFAULT 0,
            models TEXT NOT NULL DEFAULT '[]',
            lease_owner TEXT,
            lease_until DOUBLE PRECISION
        )""",
        "CREATE INDEX conversations_updated ON conversations (updated_at)",
        """CREATE TABLE turns (
            conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            status TEXT NOT NULL,
            messages TEXT NOT NULL,
            model_requested TEXT NOT NULL,
            model_served TEXT,
            reply TEXT NOT NULL DEFAULT '',
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            cost_micros BIGINT NOT NULL DEFAULT 0,
            latency_ms INTEGER,
            finish_reason TEXT,
            error_word TEXT,
            prompt_estimate INTEGER,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (conversation_id, seq)
        )""",
        """CREATE TABLE spend_ledger (
            id TEXT PRIMARY KEY,
            period TEXT NOT NULL,
            tool TEXT NOT NULL,
            status TEXT NOT NULL,
            reserved_micros BIGINT NOT NULL,
            settled_micros BIGINT,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL
        )""",
        "CREATE INDEX spend_ledger_period ON spend_ledger (period, status)",
        """CREATE TABLE image_jobs (
            idempotency_key TEXT PRIMARY KEY,
            job_id TEXT UNIQUE,
            model TEXT NOT NULL,
            prompt_words TEXT NOT NULL,
            status TEXT NOT NULL,
            files TEXT NOT NULL DEFAULT '[]',
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL
        )""",
        "CREATE INDEX image_jobs_updated ON image_jobs (updated_at)",
    ),
    (
        # Version 2: the journal recognises a retried request (a SHA-256 of it, not the prompt).
        "ALTER TABLE image_jobs ADD COLUMN request_fingerprint TEXT",
        "CREATE INDEX image_jobs_fingerprint ON image_jobs (request_fingerprint, created_at)",
    ),
    (
        # Version 3: the ledger says what each call was, for kyma://spend and get_limits.
        "ALTER TABLE spend_ledger ADD COLUMN model TEXT",
        "ALTER TABLE spend_ledger ADD COLUMN input_tokens INTEGER",
        "ALTER TABLE spend_ledger ADD COLUMN output_tokens INTEGER",
        "CREATE INDEX spend_ledger_created ON spend_ledger (period, created_at)",
    ),
    (
        # Version 4: reservations expire, so a crashed process does not hold the budget forever.
        "ALTER TABLE spend_ledger ADD COLUMN expires_at DOUBLE PRECISION",
    ),
    (
        # Version 5: a confirm token issued by one replica is good (once) at any.
        """CREATE TABLE confirm_tokens (
            token TEXT PRIMARY KEY,
            fingerprint TEXT NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL
        )""",
    ),
    (
        # Version 6: an unreported cost is NULL (unknown), and a thread counts its turns of unknown cost.
        "ALTER TABLE conversations ADD COLUMN unknown_cost_turns INTEGER NOT NULL DEFAULT 0",
        """CREATE TABLE turns_v6 (
            conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            status TEXT NOT NULL,
            messages TEXT NOT NULL,
            model_requested TEXT NOT NULL,
            model_served TEXT,
            reply TEXT NOT NULL DEFAULT '',
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            cost_micros BIGINT,
            latency_ms INTEGER,
            finish_reason TEXT,
            error_word TEXT,
            prompt_estimate INTEGER,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (conversation_id, seq)
        )""",
        f"INSERT INTO turns_v6 ({_TURNS_V1}) SELECT {_TURNS_V1} FROM turns",
        # Dropping the child table deletes no conversation; nothing references turns.
        "DROP TABLE turns",
        "ALTER TABLE turns_v6 RENAME TO turns",
    ),
)
"""MIGRATIONS[i] upgrades version i to version i + 1. Append; never edit a released entry."""

SCHEMA_VERSION = len(MIGRATIONS)

LEGACY_RESERVATION_SECONDS = 3660.0
"""How long a reservation written before version 4 holds: the longest call (KYMA_TOOL_TIMEOUT_SECONDS
is at most 3,600 s) and a minute."""
