"""The cluster tools on real processes: ``bargein.local_cluster`` (behind ``scripts/cluster``) starts
Redis and three nodes, the simulator's server mode drives them with every call's parties on different
nodes (0 routing violations, by tone over WebRTC), and ``benchmarks.cluster`` writes its rows."""

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from bargein.simulator.remote import _run
from bargein.simulator.scenario import Scenario

from bargein.local_cluster import LocalCluster

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def three_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(3, data_dir=tmp_path_factory.mktemp("cluster"), serve_args=["--media-workers", "1"]) as c:
        yield c


async def test_simulator_drives_three_nodes_with_parties_on_different_nodes(three_nodes: LocalCluster) -> None:
    urls = ",".join(n.ws for n in three_nodes.nodes)
    sc = Scenario(server=urls, calls=3, webrtc_calls=2, duration_s=4, seed=3)
    r = await _run(sc, None)
    assert r.routing_violations == 0, r.violations[:3]
    # every window checks all 6 listener/speaker pairs of both WebRTC calls; how many windows fit in 4 s
    # depends on the machine's load, so at least one
    assert r.checked_ticks >= 1 and r.routing_checks == 12 * r.checked_ticks
    assert r.calls_completed == 3 and r.monitor_sessions == 3
    assert r.supervision_ended_by_call_end == 3 and r.supervision_end_reasons_missing == 0
    assert any("spread over 3 nodes" in n for n in r.notes)


def test_every_node_answers_and_one_leads(three_nodes: LocalCluster) -> None:
    leader = three_nodes.leader()
    assert leader in three_nodes.nodes
    assert all(n.proc.poll() is None for n in three_nodes.nodes)


def test_benchmark_writes_its_rows(tmp_path: Path) -> None:
    out = tmp_path / "cluster.json"
    res = subprocess.run([sys.executable, "-m", "benchmarks.cluster", "--nodes", "1,2", "--duration", "1",
                          "--pairs", "2", "--rtt-requests", "20", "--json", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [r["nodes"] for r in rows] == [1, 2]
    keys = {"nodes", "setups_per_s", "rtt_local_ms_p50", "rtt_local_ms_p99", "rtt_relayed_ms_p50",
            "rtt_relayed_ms_p99", "relay_added_ms_p50"}
    for r in rows:
        assert keys <= set(r) and r["setups_per_s"] > 0 and r["calls"] > 0
        assert r["rtt_local_ms_p50"] > 0 and "signaling-only" in r["call_kind"]
    assert rows[0]["rtt_relayed_ms_p50"] is None and rows[0]["relay_added_ms_p50"] is None  # one node: no relay
    assert rows[1]["rtt_relayed_ms_p50"] > 0
