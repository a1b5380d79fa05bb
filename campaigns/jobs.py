"""Thin RQ entry points on the queue `push`: they take ids, never model instances or
secrets, and call the domain modules. `queueing` and `cron` refer to them as callables."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import close_old_connections
from django.utils.translation import gettext as _

from campaigns import importing, planning, scheduling, statistics, sweeper
from campaigns.models import Credential, TargetList
from campaigns.sending import job as send_job
from campaigns.sending import settling
from campaigns.sending.sender import CONNECTION_ERRORS

log = logging.getLogger(__name__)


def outlives_outages(say: str) -> Callable[[Callable[..., str]], Callable[..., str]]:
    """A job the sweeper or rqcron queues again while its work remains: a database that
    is away ends it with the result line `say`, not a failed job, so an outage does not
    pile failed jobs up in the registry (RQ keeps one a year by default)."""

    def wrap(job: Callable[..., str]) -> Callable[..., str]:
        @functools.wraps(job)
        def run(*args: object) -> str:
            try:
                return job(*args)
            except CONNECTION_ERRORS as exc:
                close_old_connections()
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                log.warning("%s%s: database unavailable: %s", job.__name__, args, first)
                return say

        return run

    return wrap


# rqcron queues it again every interval
periodic = outlives_outages("database unavailable; the next run tries again")
# the sweeper re-queues the run's planning (or settles the closed run) once it is back
requeued_by_sweeper = outlives_outages("database unavailable; the sweeper re-queues the run")


@requeued_by_sweeper
def plan_run(run_id: int) -> str:
    return planning.plan(run_id, hand_over=True)


def send_batches(run_id: int, slot: str) -> str:
    return send_job.send(run_id, slot)


@requeued_by_sweeper
def settle_run(run_id: int) -> str:
    return f"settled {settling.settle_run(run_id)} deliveries"


@periodic
def sweep() -> str:
    return str(sweeper.sweep())


def import_targets_file(
    target_list_id: int, path: str, column: str | None, user_id: int | None, import_key: str
) -> str:
    """Import an upload too big for the request into a target list, reporting progress
    and the outcome to the import's Redis hash; the file is deleted whatever happens."""
    status = importing.ImportStatus(import_key, target_list_id)
    try:
        target_list = TargetList.objects.get(pk=target_list_id)
        actor = get_user_model().objects.filter(pk=user_id).first()
        with open(path, "rb") as stream:
            result = importing.import_targets(
                target_list,
                stream,
                column=column,
                actor=actor,
                progress=status.progress,
                write_progress=status.writing,
            )
    except TargetList.DoesNotExist:
        status.fail(_("The target list was deleted."))
        return "refused: no such target list"
    except importing.ImportFileError as exc:
        status.fail(str(exc))
        return f"refused: {exc}"
    except Exception:
        status.fail(_("The import stopped on an unexpected error; rows written before it stay."))
        raise
    finally:
        Path(path).unlink(missing_ok=True)
    status.finish(result)
    return f"imported {result.rows_read} rows, added {result.added}"


@periodic
def dispatch_due() -> str:
    return str(scheduling.dispatch_due())


@periodic
def reconcile_schedules() -> str:
    """Reconcile every active credential that has mPaaS-side tasks waiting."""
    reports = {}
    for credential in Credential.objects.filter(is_active=True):
        if scheduling.tasks_in_use(credential.app_id):
            reports[credential.name] = scheduling.reconcile(credential)
    return str(reports)


@periodic
def fetch_statistics() -> str:
    """Store every active credential's mPaaS statistics (errors are recorded, not raised)."""
    return str([(r.credential, r.rows, r.tasks, r.error) for r in statistics.refresh_all()])
