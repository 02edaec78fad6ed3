"""Token roles as routes declare them: the ladder, and `service` beside it."""

from __future__ import annotations

from flowdeck.engine.keys import ROLES, TOKEN_ROLES, Role, role_allows


def test_roles_name_every_token_role() -> None:
    assert tuple(str(role) for role in Role) == TOKEN_ROLES
    assert TOKEN_ROLES[:4] == ROLES


def test_service_stands_beside_the_ladder() -> None:
    assert role_allows("admin", Role.VIEWER) and role_allows("approver", Role.OPERATOR)
    assert not role_allows("operator", Role.APPROVER)
    assert role_allows("service", Role.SERVICE)
    for rung in ROLES:
        assert not role_allows("service", rung)
        assert not role_allows(rung, Role.SERVICE)
