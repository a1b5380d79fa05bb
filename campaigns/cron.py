"""RQ cron configuration (`manage.py rqcron campaigns.cron`): the sweeper and the
due-check of console-side schedules run every SWEEP_INTERVAL_SECONDS, reconciling
mPaaS-side scheduled tasks every RECONCILE_INTERVAL_SECONDS. The schedule lives in the
cron process, not in Redis, so a Redis that restarted empty does not lose it."""

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
cron.register(
    jobs.dispatch_due,
    queue_name="push",
    interval=settings.SWEEP_INTERVAL_SECONDS,
    job_timeout=600,
    result_ttl=300,
)
cron.register(
    jobs.reconcile_schedules,
    queue_name="push",
    interval=settings.RECONCILE_INTERVAL_SECONDS,
    job_timeout=600,
    result_ttl=300,
)
