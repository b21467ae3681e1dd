"""Automatic call distribution: agents' availability (PUBLISH), which idle agent takes a call, ringing.

Agents are offered calls longest-idle first: an agent joins the back of the idle line when it becomes
available and free, and leaves it when it takes a call, goes away or signs out.
"""

from __future__ import annotations

import structlog

from . import messages as m
from .actions import Action, Send
from .directory import Directory
from .model import AgentStatus, Availability, Call
from .policy import Refused
from .settings import Settings

log = structlog.get_logger("bargein.signaling")


class Acd:
    def __init__(self, settings: Settings, directory: Directory) -> None:
        self.settings, self.directory = settings, directory
        self.agents: dict[str, AgentStatus] = {
            u.name: AgentStatus() for u in directory.users if u.role == "agent"}
        self._idle: dict[str, None] = {}  # available agents not on a call, longest idle first

    def idle(self) -> list[str]:
        """Idle agents in the order they are offered calls."""
        return list(self._idle)

    def add(self, name: str) -> None:
        """An agent added to the directory at run time."""
        self.agents.setdefault(name, AgentStatus())

    def refresh(self, name: str, free: bool) -> None:
        """Keep the idle line in step: ``free`` says the agent is signed in and on no call."""
        st = self.agents.get(name)
        idle = free and st is not None and st.state is Availability.AVAILABLE and st.call_id is None
        if idle and name not in self._idle:
            self._idle[name] = None
        elif not idle:
            self._idle.pop(name, None)

    def signed_out(self, name: str) -> None:
        if name in self.agents:
            self.agents[name].state = Availability.OFFLINE
        self._idle.pop(name, None)

    def publish(self, name: str, state: str, now: float) -> None:
        """PUBLISH: an agent sets its availability (the core then refreshes the idle line)."""
        st = self.agents.get(name)
        if st is None:
            raise Refused(403, "only agents have an availability state")
        st.state, st.since = Availability(state), now
        log.info("signaling.agent_state", user=name, state=state)

    def pick(self, call: Call) -> str | None:
        """The longest-idle agent who may take ``call`` (staffs its queue) and was not offered it yet."""
        staffed = self.settings.queues[call.queue].agents
        for name in self._idle:
            if name in call.tried_agents or (staffed is not None and name not in staffed):
                continue
            user = self.directory.user(name)
            if user is None or user.queues is None or call.queue in user.queues:
                return name
        return None

    def ring(self, call: Call, agent: str) -> list[Action]:
        """``agent`` is being offered ``call`` (the core sent the INVITE): mark it, tell the customer (180)."""
        call.tried_agents.add(agent)
        self.agents[agent].call_id = call.call_id
        log.info("signaling.ringing", call_id=call.call_id, agent=agent)
        return [Send(call.customer_conn, m.response(call.customer_cseq, "INVITE", 180, call_id=call.call_id,
                                                    agent=agent))]
