"""Keep the local mPaaS sandbox's templates in step with the console's.

On real mPaaS a template is created in the mPaaS console first; in a rehearsal against
the sandbox, saving a template here registers it there too, so a newly created template
does not fail with 3022. Only credentials whose endpoint is a local sandbox are touched.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request

from django.conf import settings

from campaigns.models import Credential, MessageTemplate

log = logging.getLogger(__name__)


def register(template: MessageTemplate) -> int:
    """Register `template` with every active sandbox credential of its app. Returns how
    many sandboxes took it; a sandbox that is down is logged, not fatal."""
    registered = 0
    body = json.dumps({"name": template.name, "placeholders": list(template.placeholders())})
    for credential in Credential.objects.filter(app_id=template.app_id, is_active=True):
        if not credential.is_sandbox:
            continue
        request = urllib.request.Request(
            credential.endpoint.rstrip("/") + "/_sandbox/templates",
            data=body.encode(),
            headers={
                "Content-Type": "application/json",
                "X-Sandbox-Token": settings.SANDBOX_CONTROL_TOKEN,
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=2):
                registered += 1
        except (urllib.error.URLError, OSError) as exc:
            log.warning(
                "sandbox at %s did not take template %s: %s",
                credential.endpoint,
                template.name,
                exc,
            )
    return registered
