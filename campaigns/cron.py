"""RQ cron configuration (`manage.py rqcron campaigns.cron`): the sweeper runs every
SWEEP_INTERVAL_SECONDS. The schedule lives in the cron process, not in Redis, so a Redis
that restarted empty does not lose it."""

from django.conf import settings
from rq import cron

from campaigns import jobs

cron.register(
    jobs.sweep,
    queue_name="push",
    interval=settings.SWEEP_INTERVAL_SECONDS,
    job_timeout=600,
    result_ttl=300,
)
