"""RQ cron configuration (`manage.py rqcron campaigns.cron`): the sweeper and the
due-check of console-side schedules run every SWEEP_INTERVAL_SECONDS, reconciling
mPaaS-side scheduled tasks every RECONCILE_INTERVAL_SECONDS, and fetching mPaaS delivery
statistics every STATS_INTERVAL_SECONDS. The schedule lives in the
cron process, not in Redis, so a Redis that restarted empty does not lose it."""

from django.conf import settings
from rq import cron

from campaigns import jobs

for job, interval in (
    (jobs.sweep, settings.SWEEP_INTERVAL_SECONDS),
    (jobs.dispatch_due, settings.SWEEP_INTERVAL_SECONDS),
    (jobs.reconcile_schedules, settings.RECONCILE_INTERVAL_SECONDS),
    (jobs.fetch_statistics, settings.STATS_INTERVAL_SECONDS),
):
    cron.register(job, queue_name="push", interval=interval, job_timeout=600, result_ttl=300)
