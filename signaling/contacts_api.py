"""Contact search over HTTP: ``/api/contacts`` and a contact's monitor sessions, recording and transcript.

- ``GET /api/contacts?channel=&queue=&agent=&from=&to=&limit=&cursor=``: newest first; the response's
  ``next_cursor`` fetches the next page (``access_metrics``).
- ``GET /api/contacts/{id}``: the contact with its monitor sessions (``access_metrics``).
- ``GET /api/contacts/{id}/recording``: the OGG/Opus file, with HTTP range requests so a browser can
  seek (``recordings_download``).
- ``GET /api/contacts/{id}/transcript``: the chat transcript, JSON (``access_metrics``).

The token comes as ``Authorization: Bearer <token>`` or ``?token=`` (an ``<audio src>`` cannot send headers).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from pydantic import ValidationError

from .contact_log import ContactLog
from .contact_models import ContactQuery
from .directory import Directory, User

log = structlog.get_logger("bargein.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, reason: str) -> web.Response:
    return web.json_response({"status": status, "reason": reason}, status=status)


class ContactsApi:
    def __init__(self, directory: Directory, contacts: ContactLog) -> None:
        self.directory = directory
        self.contacts = contacts

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/api/contacts", self._guard("access_metrics", self.search))
        app.router.add_get("/api/contacts/{contact_id}", self._guard("access_metrics", self.contact))
        app.router.add_get("/api/contacts/{contact_id}/recording", self._guard("recordings_download", self.recording))
        app.router.add_get("/api/contacts/{contact_id}/transcript", self._guard("access_metrics", self.transcript))

    def _guard(self, permission: str, handler: Callable[[web.Request, User], Awaitable[web.StreamResponse]]) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            token = request.query.get("token") or request.headers.get("Authorization", "").removeprefix("Bearer ")
            user = self.directory.by_token(token.strip()) if token else None
            if user is None:
                return _error(401, "a valid token is required")
            if permission not in self.directory.permissions(user):
                log.info("server.refused", user=user.name, path=request.path, why=f"lacks {permission}")
                return _error(403, f"profile {user.profile} lacks {permission}")
            return await handler(request, user)
        return guarded

    async def search(self, request: web.Request, user: User) -> web.Response:
        params = {k: v for k, v in request.query.items() if k != "token" and v != ""}
        try:
            q = ContactQuery.model_validate(params)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(x) for x in err["loc"]) or "query"
            return _error(400, f"parameter {field!r}: {err['msg']}")
        rows, cursor = await self.contacts.store.search(q)
        return web.json_response({"contacts": [r.model_dump() for r in rows], "next_cursor": cursor})

    async def contact(self, request: web.Request, user: User) -> web.Response:
        found = await self.contacts.store.get(request.match_info["contact_id"])
        if found is None:
            return _error(404, f"no contact {request.match_info['contact_id']!r}")
        contact, sessions = found
        return web.json_response({**contact.model_dump(), "monitor_sessions": [s.model_dump() for s in sessions]})

    async def recording(self, request: web.Request, user: User) -> web.StreamResponse:
        return await self._file(request, "recording_path", "recording", "audio/ogg")

    async def transcript(self, request: web.Request, user: User) -> web.StreamResponse:
        return await self._file(request, "transcript_path", "transcript", "application/json")

    async def _file(self, request: web.Request, field: str, what: str, content_type: str) -> web.StreamResponse:
        contact_id = request.match_info["contact_id"]
        found = await self.contacts.store.get(contact_id)
        if found is None:
            return _error(404, f"no contact {contact_id!r}")
        rel = getattr(found[0], field)
        path = self.contacts.path_of(rel) if rel else None
        if path is None or not path.is_file():
            return _error(404, f"contact {contact_id} has no {what}")
        # FileResponse answers Range requests (206) and sends the file without reading it into memory
        return web.FileResponse(path, headers={"Content-Type": content_type, "Cache-Control": "no-store"})
