"""A call's node writes its recording into its own mount of the shared storage, under the leader's name."""

from __future__ import annotations

from pathlib import Path

from bargein.signaling.cluster import messages as cm
from bargein.signaling.cluster.bus import Bus
from bargein.signaling.cluster.media_host import MediaHost
from bargein.signaling.media import protocol as p


class _Pool:
    """Records what the host asks of its worker pool (the pool itself is tested in tests/webrtc)."""

    def __init__(self) -> None:
        self.recording: list[str] = []
        self.workers: dict = {}

    def attach(self, *callbacks: object) -> None: ...

    def start_recording(self, call_id: str, rec_id: int, path: str, channels: tuple[bool, bool]) -> None:
        self.recording.append(path)
        return None


def test_the_node_records_under_its_own_recordings_dir(tmp_path: Path) -> None:
    pool = _Pool()
    mine = tmp_path / "mounted-here" / "recordings"
    host = MediaHost(Bus("redis://127.0.0.1:1/0", "n2"), "n2", pool, mine)  # type: ignore[arg-type]
    start = p.StartRecording(worker="n2", call_id="call-1", rec_id=7, path="/srv/leader-mount/recordings/abc.ogg")
    host.on_message(cm.ToNode(leader="n1", message=start).model_dump_json())
    assert pool.recording == [str(mine / "abc.ogg")]
    assert host.recordings == {7: "n1"}
