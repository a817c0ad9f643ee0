"""Privacy: what the gateway keeps about people, for how long, and how it is removed.

    capture.py     `capture.redact`: rows anonymized in the recorder's writer, before any disk
    forgotten.py   the forget list the recorder consults, so late rows of a forgotten person
                   (in flight, spooled, replayed) are dropped, not stored
    forget.py      `flywheel forget` / `DELETE /admin/users/{id}`: delete, purge, report runs
    retention.py   `retention`: the background pass deleting old rows in small batches
    audit.py       the audit trail of admin actions (a middleware, and `record_action`)
    subjects.py    the salted hash naming a user or session in manifests and the forget list

Nothing here runs on the request path: redaction happens in the recorder's writer task, the
retention pass and forgets are their own tasks, the audit row is written after the response.
"""

from __future__ import annotations

from aiohttp import web


def install(app: web.Application) -> None:
    """The audit middleware and the retention task, on an app `create_app` is building."""
    from gateway.privacy.audit import audit_middleware
    from gateway.privacy.retention import retention_context

    app.middlewares.append(audit_middleware)
    app.cleanup_ctx.append(retention_context)
