"""chunk store guard: one statement stores a chunk, or aborts as a whole

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 08:00:00.000000

The pipeline stores a new chunk (fragments, tags, chunk row, run count, progress event) in a
single autocommit statement. This function, called by that statement's final SELECT, aborts
the whole statement (so nothing of it is written) when the result must not stand:

- MMRUN: the run is no longer active (cancelBatch skipped it);
- MMRDO: the chunk was stored before (a redelivered job): the caller replaces it instead;
- MMTAG: a tag was created by a writer that committed after the statement's snapshot.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
        CREATE FUNCTION mmos_chunk_stored(seq bigint, chunk_is_new boolean, tags_known bigint,
                                          tags_wanted bigint, replacing boolean, run bigint)
        RETURNS bigint LANGUAGE plpgsql AS $$
        BEGIN
            IF seq IS NULL THEN
                RAISE EXCEPTION 'run % is no longer active', run USING ERRCODE = 'MMRUN';
            END IF;
            IF NOT replacing AND NOT chunk_is_new THEN
                RAISE EXCEPTION 'a chunk of run % was stored before', run USING ERRCODE = 'MMRDO';
            END IF;
            IF NOT replacing AND tags_known < tags_wanted THEN
                RAISE EXCEPTION 'a tag of run % was created concurrently', run
                    USING ERRCODE = 'MMTAG';
            END IF;
            RETURN seq;
        END
        $$
    """)


def downgrade() -> None:
    op.execute("DROP FUNCTION mmos_chunk_stored(bigint, boolean, bigint, bigint, boolean, bigint)")
