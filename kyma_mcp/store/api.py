"""`Store`: the one async interface to kyma-mcp's durable state, whichever database holds it.

Three kinds of state live here, each written in short transactions:
- conversations and their turns (the `chat` tool's threads), with a lease so that only one turn
  of a thread is in flight at a time, across processes and replicas;
- the spend ledger: reservations made atomically against a budget, settled or released later;
- the image-job journal: each job recorded before its submit is sent;
- the one-time `confirm` tokens of KYMA_CONFIRM_ABOVE_USD.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Sequence
from typing import cast

from kyma_mcp.errors import store_error
from kyma_mcp.store.database import Database, Row, Transaction
from kyma_mcp.store.records import (
    Conversation,
    ImageJob,
    LedgerEntry,
    LedgerStatus,
    NewTurn,
    PeriodSpend,
    Turn,
    TurnOutcome,
)
from kyma_mcp.store.schema import LEGACY_RESERVATION_SECONDS, MIGRATIONS, SCHEMA_VERSION

_CONVERSATION_COLUMNS = "id, title, system, created_at, updated_at, turns, cost_micros, models, unknown_cost_turns"
_ENDED_COLUMNS = (
    "reply",
    "model_served",
    "prompt_tokens",
    "completion_tokens",
    "cost_micros",
    "latency_ms",
    "finish_reason",
    "error_word",
    "prompt_estimate",
)
"""What a turn's end writes beside its status, in `_ended`'s order."""
_ENDED_SET = ", ".join(f"{column} = ?" for column in _ENDED_COLUMNS)
_TURN_COLUMNS = "conversation_id, seq, status, messages, model_requested, created_at, " + ", ".join(_ENDED_COLUMNS)
_LEDGER_COLUMNS = (
    "id, period, tool, status, reserved_micros, settled_micros, created_at, updated_at, model, input_tokens, "
    "output_tokens, expires_at"
)
_HELD = f"status = 'reserved' AND COALESCE(expires_at, created_at + {LEGACY_RESERVATION_SECONDS}) >= ?"
"""A reservation that still holds the budget at the time bound to `?`."""
_UNKNOWN = "status = 'settled' AND settled_micros IS NULL"
"""A call that ended with no known charge: it counts at its reservation (its estimate) against a budget."""
_JOB_COLUMNS = (
    "idempotency_key, model, prompt_words, status, created_at, updated_at, job_id, files, request_fingerprint"
)
_SCHEMA_LOCK = "kyma-mcp:schema"


class Store:
    """kyma-mcp's durable state over one `Database` (SQLite file, SQLite in memory, or PostgreSQL)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    @property
    def where(self) -> str:
        return self.database.where

    async def migrate(self) -> int:
        """Bring the schema to `SCHEMA_VERSION` (safe when several processes start at once); the version found."""
        async with self.database.transaction(write=True, lock=_SCHEMA_LOCK) as tx:
            await tx.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            rows = await tx.fetch("SELECT version FROM schema_version")
            found = int(rows[0][0]) if rows else 0
            if found > SCHEMA_VERSION:
                raise store_error(
                    self.where, f"its schema (version {found}) is newer than this kyma-mcp (version {SCHEMA_VERSION})"
                )
            for statements in MIGRATIONS[found:]:
                for statement in statements:
                    await tx.execute(statement)
            if not rows:
                await tx.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            elif found < SCHEMA_VERSION:
                await tx.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
            return found

    async def aclose(self) -> None:
        await self.database.aclose()

    # Conversations -----------------------------------------------------------------------------

    async def begin_turn(
        self,
        conversation: Conversation,
        turn: NewTurn,
        *,
        create: bool,
        owner: str,
        lease_until: float,
        replace_system: bool,
    ) -> tuple[int, list[Turn]] | None:
        """Take the thread's lease and record `turn` as pending; its number and the turns before it.

        None when another turn holds the lease (the caller waits and tries again). A pending turn
        left by a lease that expired (its process died) is marked `interrupted` first.
        `create` makes the conversation; otherwise a missing one raises `LookupError`.
        """
        now = turn.created_at
        async with self.database.transaction(write=True) as tx:
            if create:
                await tx.execute(
                    "INSERT INTO conversations (id, title, system, created_at, updated_at, lease_owner, lease_until) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (conversation.id, conversation.title, conversation.system, now, now, owner, lease_until),
                )
            else:
                taken = await tx.execute(
                    "UPDATE conversations SET lease_owner = ?, lease_until = ? "
                    "WHERE id = ? AND (lease_owner IS NULL OR lease_until < ?)",
                    (owner, lease_until, conversation.id, now),
                )
                if not taken:
                    exists = await tx.fetch("SELECT 1 FROM conversations WHERE id = ?", (conversation.id,))
                    if not exists:
                        raise LookupError(conversation.id)
                    return None
                stranded = await tx.execute(
                    "UPDATE turns SET status = 'interrupted', updated_at = ? WHERE conversation_id = ? "
                    "AND status = 'pending'",
                    (now, conversation.id),
                )
                if stranded:  # sent by a process that died: whether Kyma charged for them is unknown
                    await tx.execute(
                        "UPDATE conversations SET unknown_cost_turns = unknown_cost_turns + ? WHERE id = ?",
                        (stranded, conversation.id),
                    )
                if replace_system:
                    await tx.execute(
                        "UPDATE conversations SET system = ? WHERE id = ?", (conversation.system, conversation.id)
                    )
            earlier = [
                _turn(row)
                for row in await tx.fetch(
                    f"SELECT {_TURN_COLUMNS} FROM turns WHERE conversation_id = ? ORDER BY seq", (conversation.id,)
                )
            ]
            seq = (earlier[-1].seq + 1) if earlier else 1
            await tx.execute(
                "INSERT INTO turns (conversation_id, seq, status, messages, model_requested, created_at, updated_at) "
                "VALUES (?, ?, 'pending', ?, ?, ?, ?)",
                (conversation.id, seq, turn.messages_json, turn.model_requested, now, now),
            )
            await tx.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation.id))
        return seq, earlier

    async def finish_turn(
        self, conversation_id: str, seq: int, outcome: TurnOutcome, *, owner: str, now: float
    ) -> None:
        """Record how turn `seq` ended, add it to the thread's totals and give up the lease."""
        async with self.database.transaction(write=True) as tx:
            await tx.execute(
                f"UPDATE turns SET status = ?, {_ENDED_SET}, updated_at = ? WHERE conversation_id = ? AND seq = ?",
                (outcome.status, *_ended(outcome), now, conversation_id, seq),
            )
            rows = await tx.fetch("SELECT models FROM conversations WHERE id = ?", (conversation_id,))
            models = list(_strings(rows[0][0])) if rows else []
            served = outcome.model_served
            if outcome.status == "complete" and served and served not in models:
                models.append(served)
            await tx.execute(
                "UPDATE conversations SET turns = turns + ?, cost_micros = cost_micros + ?, "
                "unknown_cost_turns = unknown_cost_turns + ?, models = ?, "
                "updated_at = ?, lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?",
                (
                    1 if outcome.status == "complete" else 0,
                    outcome.cost_micros or 0,
                    1 if outcome.cost_micros is None else 0,
                    json.dumps(models),
                    now,
                    conversation_id,
                    owner,
                ),
            )

    async def record_thread(
        self, conversation: Conversation, turn: NewTurn, outcome: TurnOutcome, *, now: float
    ) -> None:
        """Write a new thread with its first turn, ended as `outcome`: what `begin_turn` (create) then
        `finish_turn` would leave, in one transaction, for a thread nobody else can know of yet."""
        complete = outcome.status == "complete"
        models = [outcome.model_served] if complete and outcome.model_served else []
        async with self.database.transaction(write=True) as tx:
            await tx.execute(
                "INSERT INTO conversations (id, title, system, created_at, updated_at, turns, cost_micros, models, "
                "unknown_cost_turns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    conversation.id,
                    conversation.title,
                    conversation.system,
                    turn.created_at,
                    now,
                    1 if complete else 0,
                    outcome.cost_micros or 0,
                    json.dumps(models),
                    1 if outcome.cost_micros is None else 0,
                ),
            )
            await tx.execute(
                f"INSERT INTO turns ({_TURN_COLUMNS}, updated_at) "
                "VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    conversation.id,
                    outcome.status,
                    turn.messages_json,
                    turn.model_requested,
                    turn.created_at,
                    *_ended(outcome),
                    now,
                ),
            )

    async def conversation(self, conversation_id: str) -> Conversation | None:
        async with self.database.transaction(write=False) as tx:
            rows = await tx.fetch(f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE id = ?", (conversation_id,))
        return _conversation(rows[0]) if rows else None

    async def conversations(self, *, limit: int, offset: int = 0) -> tuple[list[Conversation], int]:
        """A page of conversations, most recently updated first, and how many there are in all."""
        async with self.database.transaction(write=False) as tx:
            rows = await tx.fetch(
                f"SELECT {_CONVERSATION_COLUMNS} FROM conversations ORDER BY updated_at DESC, id LIMIT ? OFFSET ?",
                (limit, offset),
            )
            total = await tx.fetch("SELECT count(*) FROM conversations")
        return [_conversation(row) for row in rows], int(total[0][0])

    async def turns(self, conversation_id: str) -> list[Turn]:
        async with self.database.transaction(write=False) as tx:
            rows = await tx.fetch(
                f"SELECT {_TURN_COLUMNS} FROM turns WHERE conversation_id = ? ORDER BY seq", (conversation_id,)
            )
        return [_turn(row) for row in rows]

    async def delete_conversation(self, conversation_id: str) -> bool:
        async with self.database.transaction(write=True) as tx:
            await tx.execute("DELETE FROM turns WHERE conversation_id = ?", (conversation_id,))
            return bool(await tx.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,)))

    async def prune_conversations(self, *, updated_before: float) -> int:
        """Delete conversations last updated before the cut-off (and not being written); how many."""
        async with self.database.transaction(write=True) as tx:
            await tx.execute(
                "DELETE FROM turns WHERE conversation_id IN (SELECT id FROM conversations "
                "WHERE updated_at < ? AND lease_owner IS NULL)",
                (updated_before,),
            )
            return await tx.execute(
                "DELETE FROM conversations WHERE updated_at < ? AND lease_owner IS NULL", (updated_before,)
            )

    # Spend ledger ------------------------------------------------------------------------------

    async def prune_ledger(self, *, created_before: float, now: float) -> int:
        """Delete ledger entries made before the cut-off, and confirm tokens expired at `now`; entries gone."""
        async with self.database.transaction(write=True) as tx:
            await tx.execute("DELETE FROM confirm_tokens WHERE expires_at < ?", (now,))
            return await tx.execute("DELETE FROM spend_ledger WHERE created_at < ?", (created_before,))

    async def reserve(
        self,
        entry_id: str,
        *,
        period: str,
        tool: str,
        amount_micros: int,
        budget_micros: int | None,
        now: float,
        expires_at: float | None = None,
        model: str | None = None,
    ) -> bool:
        """Reserve `amount_micros` in `period` until `expires_at` (default: `LEGACY_RESERVATION_SECONDS`
        from now) if settled + reserved + amount stays within the budget (None: no budget, only record).

        Atomic across processes and replicas: reservations of one period are serialised. False (nothing
        written) when it would exceed. Reservations past their expiry (their process died) are marked
        `expired` first. Without a budget the period's sums are not read: they cost a scan of all the
        period's entries (a month's calls), which only a budget needs.
        """
        async with self.database.transaction(write=True, lock=f"kyma-mcp:ledger:{period}") as tx:
            await tx.execute(
                f"UPDATE spend_ledger SET status = 'expired', updated_at = ? WHERE period = ? AND status = 'reserved' "
                f"AND NOT ({_HELD})",
                (now, period, now),
            )
            if budget_micros is not None:
                spend = await _period_spend(tx, period, now)
                if spend.total_micros + amount_micros > budget_micros:
                    return False
            await tx.execute(
                "INSERT INTO spend_ledger (id, period, tool, status, reserved_micros, created_at, updated_at, model, "
                "expires_at) VALUES (?, ?, ?, 'reserved', ?, ?, ?, ?, ?)",
                (
                    entry_id,
                    period,
                    tool,
                    amount_micros,
                    now,
                    now,
                    model,
                    expires_at or now + LEGACY_RESERVATION_SECONDS,
                ),
            )
            return True

    async def record_call(
        self,
        entry_id: str,
        *,
        period: str,
        tool: str,
        status: LedgerStatus,
        reserved_micros: int,
        settled_micros: int | None,
        created_at: float,
        now: float,
        expires_at: float,
        model: str | None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> None:
        """Write a call that has ended, in one statement: what `reserve` then `settle` (or `release`)
        would leave, for a call that held nothing against a budget."""
        async with self.database.transaction(write=True) as tx:
            await tx.execute(
                f"INSERT INTO spend_ledger ({_LEDGER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry_id,
                    period,
                    tool,
                    status,
                    reserved_micros,
                    settled_micros,
                    created_at,
                    now,
                    model,
                    input_tokens,
                    output_tokens,
                    expires_at,
                ),
            )

    async def settle(
        self,
        entry_id: str,
        *,
        amount_micros: int | None,
        now: float,
        model: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> bool:
        """Replace a reservation by what was really charged (and the model served and tokens Kyma
        counted, when known), even one that expired meanwhile; False if it was not reserved.

        `amount_micros` None: the charge is unknown. The entry keeps its reservation as the estimate it
        counts at against a budget (see `PeriodSpend.total_micros`)."""
        async with self.database.transaction(write=True) as tx:
            return bool(
                await tx.execute(
                    "UPDATE spend_ledger SET status = 'settled', settled_micros = ?, updated_at = ?, "
                    "model = COALESCE(?, model), input_tokens = ?, output_tokens = ? "
                    "WHERE id = ? AND status IN ('reserved', 'expired')",
                    (amount_micros, now, model, input_tokens, output_tokens, entry_id),
                )
            )

    async def release(self, entry_id: str, *, now: float) -> bool:
        """Drop a reservation that was never charged; False if it was not reserved."""
        async with self.database.transaction(write=True) as tx:
            return bool(
                await tx.execute(
                    "UPDATE spend_ledger SET status = 'released', updated_at = ? WHERE id = ? AND status = 'reserved'",
                    (now, entry_id),
                )
            )

    async def period_spend(self, period: str, *, now: float | None = None) -> PeriodSpend:
        """The period's money at `now` (default: the present; reservations past their expiry no longer count)."""
        async with self.database.transaction(write=False) as tx:
            return await _period_spend(tx, period, time.time() if now is None else now)

    async def ledger_entry(self, entry_id: str) -> LedgerEntry | None:
        async with self.database.transaction(write=False) as tx:
            rows = await tx.fetch(f"SELECT {_LEDGER_COLUMNS} FROM spend_ledger WHERE id = ?", (entry_id,))
        return _ledger_entry(rows[0]) if rows else None

    async def period_entries(self, period: str, *, limit: int) -> list[LedgerEntry]:
        """The period's calls, newest first, at most `limit`."""
        async with self.database.transaction(write=False) as tx:
            rows = await tx.fetch(
                f"SELECT {_LEDGER_COLUMNS} FROM spend_ledger WHERE period = ? ORDER BY created_at DESC, id LIMIT ?",
                (period, limit),
            )
        return [_ledger_entry(row) for row in rows]

    # Confirm tokens ----------------------------------------------------------------------------

    async def issue_token(self, token: str, fingerprint: str, *, expires_at: float, now: float) -> None:
        """Record a one-time `confirm` token for the call with `fingerprint`; expired ones go first."""
        async with self.database.transaction(write=True) as tx:
            await tx.execute("DELETE FROM confirm_tokens WHERE expires_at < ?", (now,))
            await tx.execute(
                "INSERT INTO confirm_tokens (token, fingerprint, expires_at) VALUES (?, ?, ?)",
                (token, fingerprint, expires_at),
            )

    async def redeem_token(self, token: str, fingerprint: str, *, now: float) -> bool:
        """Use a token: True once (across processes), if it is for this very call and not expired."""
        async with self.database.transaction(write=True) as tx:
            return bool(
                await tx.execute(
                    "DELETE FROM confirm_tokens WHERE token = ? AND fingerprint = ? AND expires_at >= ?",
                    (token, fingerprint, now),
                )
            )

    # Image-job journal -------------------------------------------------------------------------

    async def record_job(self, job: ImageJob) -> ImageJob:
        """Record a job before its submit is sent; an existing record for the key wins (a retried
        call finds the job the first call submitted) and is returned."""
        async with self.database.transaction(write=True) as tx:
            await tx.execute(
                f"INSERT INTO image_jobs ({_JOB_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (idempotency_key) DO NOTHING",
                (
                    job.idempotency_key,
                    job.model,
                    job.prompt_words,
                    job.status,
                    job.created_at,
                    job.updated_at,
                    job.job_id,
                    json.dumps(list(job.files)),
                    job.request_fingerprint,
                ),
            )
            rows = await tx.fetch(
                f"SELECT {_JOB_COLUMNS} FROM image_jobs WHERE idempotency_key = ?", (job.idempotency_key,)
            )
        return _job(rows[0])

    async def update_job(
        self,
        idempotency_key: str,
        *,
        status: str,
        now: float,
        job_id: str | None = None,
        files: Sequence[str] | None = None,
    ) -> None:
        """Move a job on: its status, and the Kyma job id and saved files once known (None keeps them)."""
        async with self.database.transaction(write=True) as tx:
            await tx.execute(
                "UPDATE image_jobs SET status = ?, updated_at = ?, job_id = COALESCE(?, job_id), "
                "files = COALESCE(?, files) WHERE idempotency_key = ?",
                (status, now, job_id, None if files is None else json.dumps(list(files)), idempotency_key),
            )

    async def job(self, *, job_id: str | None = None, idempotency_key: str | None = None) -> ImageJob | None:
        column, value = ("job_id", job_id) if job_id is not None else ("idempotency_key", idempotency_key)
        async with self.database.transaction(write=False) as tx:
            rows = await tx.fetch(f"SELECT {_JOB_COLUMNS} FROM image_jobs WHERE {column} = ?", (value,))
        return _job(rows[0]) if rows else None

    async def unfinished_job(
        self, *, request_fingerprint: str, statuses: Collection[str], created_after: float
    ) -> ImageJob | None:
        """The newest job recorded for this same request, since `created_after`, still in one of `statuses`."""
        marks = ", ".join("?" for _ in statuses)
        async with self.database.transaction(write=False) as tx:
            rows = await tx.fetch(
                f"SELECT {_JOB_COLUMNS} FROM image_jobs WHERE request_fingerprint = ? AND created_at > ? "
                f"AND status IN ({marks}) ORDER BY created_at DESC LIMIT 1",
                (request_fingerprint, created_after, *statuses),
            )
        return _job(rows[0]) if rows else None

    async def recent_jobs(self, *, limit: int) -> list[ImageJob]:
        async with self.database.transaction(write=False) as tx:
            rows = await tx.fetch(
                f"SELECT {_JOB_COLUMNS} FROM image_jobs ORDER BY updated_at DESC, idempotency_key LIMIT ?", (limit,)
            )
        return [_job(row) for row in rows]


async def _period_spend(tx: Transaction, period: str, now: float) -> PeriodSpend:
    rows = await tx.fetch(
        "SELECT COALESCE(SUM(CASE WHEN status = 'settled' THEN settled_micros ELSE 0 END), 0), "
        f"COALESCE(SUM(CASE WHEN {_HELD} THEN reserved_micros ELSE 0 END), 0), "
        f"COALESCE(MAX(CASE WHEN {_HELD} THEN reserved_micros ELSE 0 END), 0), count(*), "
        f"COALESCE(SUM(CASE WHEN {_UNKNOWN} THEN 1 ELSE 0 END), 0), "
        f"COALESCE(SUM(CASE WHEN {_UNKNOWN} THEN reserved_micros ELSE 0 END), 0) "
        "FROM spend_ledger WHERE period = ?",
        (now, now, period),
    )
    settled, reserved, largest, calls, unknown, unknown_reserved = rows[0]
    return PeriodSpend(int(settled), int(reserved), int(largest), int(calls), int(unknown), int(unknown_reserved))


def _ledger_entry(row: Row) -> LedgerEntry:
    return LedgerEntry(
        id=row[0],
        period=row[1],
        tool=row[2],
        status=row[3],
        reserved_micros=int(row[4]),
        settled_micros=None if row[5] is None else int(row[5]),
        created_at=float(row[6]),
        updated_at=float(row[7]),
        model=row[8],
        input_tokens=None if row[9] is None else int(row[9]),
        output_tokens=None if row[10] is None else int(row[10]),
        expires_at=None if row[11] is None else float(row[11]),
    )


def _strings(value: object) -> tuple[str, ...]:
    try:
        items: object = json.loads(str(value))
    except ValueError:
        return ()
    return tuple(str(item) for item in cast(list[object], items)) if isinstance(items, list) else ()


def _ended(outcome: TurnOutcome) -> tuple[object, ...]:
    """`outcome`'s values for `_ENDED_COLUMNS`."""
    return (
        outcome.reply,
        outcome.model_served,
        outcome.prompt_tokens,
        outcome.completion_tokens,
        outcome.cost_micros,
        outcome.latency_ms,
        outcome.finish_reason,
        outcome.error_word,
        outcome.prompt_estimate,
    )


def _conversation(row: Row) -> Conversation:
    return Conversation(
        id=row[0],
        title=row[1],
        system=row[2],
        created_at=float(row[3]),
        updated_at=float(row[4]),
        turns=int(row[5]),
        cost_micros=int(row[6]),
        models=_strings(row[7]),
        unknown_cost_turns=int(row[8]),
    )


def _turn(row: Row) -> Turn:
    return Turn(
        conversation_id=row[0],
        seq=int(row[1]),
        messages_json=row[3],
        model_requested=row[4],
        created_at=float(row[5]),
        outcome=TurnOutcome(
            status=row[2],
            reply=row[6],
            model_served=row[7],
            prompt_tokens=row[8],
            completion_tokens=row[9],
            cost_micros=None if row[10] is None else int(row[10]),
            latency_ms=row[11],
            finish_reason=row[12],
            error_word=row[13],
            prompt_estimate=row[14],
        ),
    )


def _job(row: Row) -> ImageJob:
    return ImageJob(
        idempotency_key=row[0],
        model=row[1],
        prompt_words=row[2],
        status=row[3],
        created_at=float(row[4]),
        updated_at=float(row[5]),
        job_id=row[6],
        files=_strings(row[7]),
        request_fingerprint=row[8],
    )
