"""manage.py mpaas_sandbox: run the local mPaaS stand-in."""

import sys

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Run the local mPaaS sandbox (same as `python -m mpaas_sandbox`); "
        "pass its arguments after --, e.g. `manage.py mpaas_sandbox -- serve --port 8900`."
    )

    def add_arguments(self, parser):
        parser.add_argument("sandbox_args", nargs="*", help="arguments for mpaas_sandbox")

    def handle(self, *args, **options):
        from mpaas_sandbox.__main__ import main

        code = main(options["sandbox_args"] or ["serve"])
        sys.exit(code or 0)
