"""The job queue's name and time limit, shared by the broker and the actors."""

QUEUE = "mmos-jobs"
# A message is only a wake-up: the job row carries attempts, and the sweeper re-sends lost
# messages. Dramatiq's own retries stay off so a failure is never retried twice.
JOB_TIME_LIMIT_MS = 6 * 60 * 60 * 1000
