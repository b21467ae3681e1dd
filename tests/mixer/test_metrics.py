import numpy as np
from bargein.mixer import LegRouting, MixerEngine, Role, VirtualClock
from bargein.mixer.metrics import MixerMetrics
from prometheus_client import CollectorRegistry, generate_latest


def test_metrics_follow_ticks_and_counters() -> None:
    engine = MixerEngine(rate=8000)
    a = engine.add_leg(1, LegRouting(Role.AGENT))
    engine.add_leg(1, LegRouting(Role.CUSTOMER))
    clock = VirtualClock(engine.tick)
    registry = CollectorRegistry()
    MixerMetrics(engine, clock, registry)
    for _ in range(engine.depth + 1):
        engine.push(a, np.zeros(160, np.int16))
    clock.advance(51)
    text = generate_latest(registry).decode()
    assert "bargein_mixer_ticks_total 51.0" in text
    assert "bargein_mixer_legs 2.0" in text
    assert "bargein_mixer_frames_dropped 1.0" in text
    assert 'bargein_mixer_tick_compute_ms_count 51.0' in text
