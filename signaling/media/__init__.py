"""Media worker processes: the calls' audio (aiortc legs + a mixer shard) outside the signaling process."""
