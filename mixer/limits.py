"""Per-call limits: parties, supervisors and barging supervisors."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .roles import Role, SupervisorMode


class LimitError(ValueError):
    """A leg would break a call's limits; the message names the limit."""


class CallLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_parties: int = Field(6, ge=2, le=64, description="customers, agents and other parties in one call")
    max_supervisors: int = Field(2, ge=0, le=16, description="supervisors attached to one call")
    max_barging: int = Field(1, ge=0, le=16, description="supervisors barging at once in one call")

    @model_validator(mode="after")
    def _barging_within_supervisors(self) -> CallLimits:
        if self.max_barging > self.max_supervisors:
            raise ValueError("max_barging cannot exceed max_supervisors")
        return self

    @property
    def max_legs(self) -> int:
        return self.max_parties + self.max_supervisors

    def check(self, roles_modes: Sequence[tuple[Role, SupervisorMode | None]]) -> None:
        """Raise :class:`LimitError` if a call with these legs would break a limit."""
        parties = sum(1 for role, _ in roles_modes if role is not Role.SUPERVISOR)
        supervisors = sum(1 for role, _ in roles_modes if role is Role.SUPERVISOR)
        barging = sum(1 for role, mode in roles_modes if mode is SupervisorMode.BARGE)
        if parties > self.max_parties:
            raise LimitError(f"party limit reached: at most {self.max_parties} parties in a call")
        if supervisors > self.max_supervisors:
            raise LimitError(f"supervisor limit reached: at most {self.max_supervisors} supervisors on a call")
        if barging > self.max_barging:
            raise LimitError(f"barge limit reached: at most {self.max_barging} supervisor(s) may barge at once")
