"""Users and security profiles: who may do what.

Profiles grant permissions (docs/behaviour.md, "Permissions"): ``ccp_access`` (use the softphone: take or place calls),
``access_metrics`` (see the real-time agents view and records), ``realtime_monitor`` and
``realtime_barge`` (barge and coach need monitor too). A built-in demo directory works with no file;
``load_directory(path)`` reads TOML or JSON with the same shape as :data:`DEMO`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

Permission = Literal["ccp_access", "access_metrics", "realtime_monitor", "realtime_barge"]
UserRole = Literal["agent", "customer", "supervisor"]


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    permissions: frozenset[Permission] = frozenset()

    @model_validator(mode="after")
    def _barge_needs_monitor(self) -> Profile:
        if "realtime_barge" in self.permissions and "realtime_monitor" not in self.permissions:
            raise ValueError(f"profile {self.name!r}: realtime_barge requires realtime_monitor")
        return self


class User(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    token: str = Field(min_length=1, max_length=256)
    role: UserRole
    profile: str
    display_name: str = ""
    queues: list[str] | None = None  # agents: the queues they take calls from (None: every open queue)


def _token_key(token: str) -> bytes:
    # keyed by digest so the dict lookup reveals nothing about the token's characters
    return hashlib.sha256(token.encode(errors="surrogatepass")).digest()


class Directory(BaseModel):
    model_config = ConfigDict(extra="forbid")

    profiles: list[Profile]
    users: list[User]
    _by_token: dict[str, User] = PrivateAttr(default_factory=dict)
    _by_name: dict[str, User] = PrivateAttr(default_factory=dict)
    _perms: dict[str, frozenset[str]] = PrivateAttr(default_factory=dict)

    def model_post_init(self, __context: object) -> None:
        self._perms = {p.name: p.permissions for p in self.profiles}
        for u in self.users:
            self._by_token[_token_key(u.token)], self._by_name[u.name] = u, u

    @model_validator(mode="after")
    def _check(self) -> Directory:
        names = {p.name for p in self.profiles}
        for u in self.users:
            if u.profile not in names:
                raise ValueError(f"user {u.name!r}: unknown profile {u.profile!r}")
        if len({u.token for u in self.users}) != len(self.users):
            raise ValueError("tokens must be unique")
        if len({u.name for u in self.users}) != len(self.users):
            raise ValueError("user names must be unique")
        return self

    def by_token(self, token: str) -> User | None:
        """The user holding ``token``: looked up by its digest, then compared in constant time."""
        user = self._by_token.get(_token_key(token))
        if user is None or not hmac.compare_digest(user.token.encode(), token.encode()):
            return None
        return user

    def user(self, name: str) -> User | None:
        return self._by_name.get(name)

    def permissions(self, user: User) -> frozenset[str]:
        return self._perms[user.profile]

    def add_user(self, user: User) -> None:
        """Add a user at run time (the simulator creates its parties)."""
        if user.profile not in self._perms:
            raise ValueError(f"user {user.name!r}: unknown profile {user.profile!r}")
        if user.name in self._by_name or _token_key(user.token) in self._by_token:
            raise ValueError(f"user {user.name!r} or its token already exists")
        self.users.append(user)
        self._by_token[_token_key(user.token)], self._by_name[user.name] = user, user


_AGENT = ["ccp_access"]
_MANAGER = ["ccp_access", "access_metrics", "realtime_monitor", "realtime_barge"]
DEMO = {
    "profiles": [
        {"name": "Agent", "permissions": _AGENT},
        {"name": "CallCenterManager", "permissions": _MANAGER},
        {"name": "MonitorOnly", "permissions": ["ccp_access", "access_metrics", "realtime_monitor"]},
        {"name": "Customer", "permissions": ["ccp_access"]},
    ],
    "users": [
        *({"name": f"customer{i}", "token": f"customer{i}", "role": "customer", "profile": "Customer",
           "display_name": f"Customer {i}"} for i in range(1, 6)),
        *({"name": f"agent{i}", "token": f"agent{i}", "role": "agent", "profile": "Agent",
           "display_name": f"Agent {i}"} for i in range(1, 6)),
        {"name": "supervisor1", "token": "supervisor1", "role": "supervisor", "profile": "CallCenterManager",
         "display_name": "Supervisor 1"},
        {"name": "supervisor2", "token": "supervisor2", "role": "supervisor", "profile": "CallCenterManager",
         "display_name": "Supervisor 2"},
        {"name": "supervisor3", "token": "supervisor3", "role": "supervisor", "profile": "CallCenterManager",
         "display_name": "Supervisor 3"},
        {"name": "monitoronly1", "token": "monitoronly1", "role": "supervisor", "profile": "MonitorOnly",
         "display_name": "Monitor-only supervisor"},
    ],
}


def demo_directory() -> Directory:
    return Directory.model_validate(DEMO)


def load_directory(path: str | Path | None) -> Directory:
    if path is None:
        return demo_directory()
    p = Path(path)
    text = p.read_text()
    data = tomllib.loads(text) if p.suffix == ".toml" else json.loads(text)
    return Directory.model_validate(data)
