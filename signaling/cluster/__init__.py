"""Several ``bargein serve`` nodes as one contact center, over Redis (docs/architecture.md, "Cluster").

One node at a time is the signaling leader and runs the one sans-IO core; every node hosts media. A client's
WebSocket on another node is relayed to the leader over Redis pub/sub; a call's legs all live on one node,
chosen by load with a lock, and its leg messages travel to that node over Redis as well.

- :mod:`.keys`: Redis key and channel names, timeouts.
- :mod:`.bus`: the Redis connection: availability, an ordered outbox, subscriptions that come back.
- :mod:`.registry`: the nodes, their load and liveness.
- :mod:`.leader`: which node runs the signaling core.
- :mod:`.relay`: signaling frames between the node holding a socket and the leader.
- :mod:`.media`: the leader's side of the media (placing calls on nodes).
- :mod:`.media_host`: every node's side of the media (its local worker pool).
- :mod:`.node`: one node, put together.
"""
