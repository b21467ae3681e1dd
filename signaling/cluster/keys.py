"""Redis names and the cluster's timeouts (docs/architecture.md, "Cluster")."""

from __future__ import annotations

NODES = "bargein:nodes"  # hash: node id -> NodeEntry JSON
LEADER = "bargein:leader"  # string: the leader's node id, with a TTL renewed by the leader
CORE = "bargein:core"  # string: the leader's state for its successor (handover.py)

HEARTBEAT_S = 1.0  # each node rewrites its entry, the leader renews its lock
NODE_TIMEOUT_S = 5.0  # an entry older than this is a dead node (3 s misjudged live nodes on a loaded 2-core machine)
JUDGE_AFTER_S = 2 * NODE_TIMEOUT_S  # Redis reachable this long before nodes are judged (after an outage)
LEADER_TTL_MS = 5000  # the lock lapses this long after the leader's last renewal
# a call's placement key lapses this long after the leader's last refresh: longer than a leader's
# failover (at most its lock's TTL, then a whole TTL of absence: 10 s) plus ORPHAN_AFTER_S: calls survive one
CALL_TTL_MS = 20_000
ORPHAN_AFTER_S = 5.0  # a node drops a call whose placement key has been missing this long
SNAPSHOT_EVERY_S = 0.1  # the leader writes its state at most this often (what a successor may miss)
CORE_TTL_MS = 60_000  # the snapshot lapses this long after the last leader's last write
RECONNECT_MAX_S = 1.0  # retry Redis at least this often (the leader must re-assert its lock quickly)


def call_key(call_id: str) -> str:
    """The call's placement lock: its value is the node that hosts the call's media."""
    return f"bargein:call:{call_id}"


def signal_channel(node: str) -> str:
    """Signaling frames for ``node``: from edges when it leads, from the leader for its sockets."""
    return f"bargein:signal:{node}"


def media_channel(node: str) -> str:
    """Leg messages for the media ``node`` hosts."""
    return f"bargein:media:{node}"


def media_reply_channel(leader: str) -> str:
    """Answers, refusals, lost legs and calls from media nodes to the leader."""
    return f"bargein:media-reply:{leader}"
