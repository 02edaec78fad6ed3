"""Paths reserved for the admin: token management.

They are not served over HTTP yet (`flowdeck token` manages tokens on the server's machine), but
every route that will live here is the admin's: an admin learns there is no such route (404),
anyone else that the path is not theirs (403), as it was before these routes existed.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException

from flowdeck.server.access import ADMIN

router = APIRouter(dependencies=ADMIN)
AREAS = ("tokens",)
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


async def not_served(request: Request) -> None:
    raise HTTPException(404)


for _area in AREAS:
    for _path in (f"/{_area}", f"/{_area}/{{rest:path}}"):
        router.add_api_route(_path, not_served, methods=METHODS, include_in_schema=False,
                             name=f"reserved_{_area.replace('-', '_')}_{len(_path)}")
