"""Redis names and the cluster's timeouts (docs/architecture.md, "Cluster")."""

from __future__ import annotations

NODES = "bargein:nodes"  # hash: node id -> NodeEntry JSON
LEADER = "bargein:leader"  # string: the leader's node id, with a TTL renewed by the leader

HEARTBEAT_S = 1.0  # each node rewrites its entry, the leader renews its lock
NODE_TIMEOUT_S = 5.0  # an entry older than this is a dead node (3 s misjudged live nodes on a loaded 2-core machine)
JUDGE_AFTER_S = 2 * NODE_TIMEOUT_S  # Redis reachable this long before nodes are judged (after an outage)
LEADER_TTL_MS = 5000  # the lock lapses this long after the leader's last renewal
CALL_TTL_MS = 10_000  # a call's placement key lapses this long after the leader's last refresh
ORPHAN_AFTER_S = 5.0  # a node drops a call whose placement key has been missing this long
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
