"""Every role x mode with a distinct tone per leg; each listener's spectrum shows exactly whom it hears."""

from dataclasses import replace

import numpy as np
import pytest
from bargein.mixer import LegRouting, MixerEngine, Role, SupervisorMode, samples_per_frame
from bargein.mixer.tones import level_dbfs, tone

SUP = Role.SUPERVISOR
HEARD_DB = -20.0  # tones are sent at -12 dBFS
SILENT_DB = -60.0

# leg name -> routing; each leg sends its own tone
LEGS = {
    "customer": LegRouting(Role.CUSTOMER),
    "agent": LegRouting(Role.AGENT),
    "party": LegRouting(Role.PARTY),
}
SUPERVISOR_FOR = {m: LegRouting(SUP, m) for m in SupervisorMode}

# expected hearing, from docs/behaviour.md: listener -> speakers heard (for the supervisor in mode m)
EXPECTED = {
    SupervisorMode.MONITOR: {
        "customer": {"agent", "party"},
        "agent": {"customer", "party"},
        "party": {"customer", "agent"},
        "supervisor": {"customer", "agent", "party"},
    },
    SupervisorMode.BARGE: {
        "customer": {"agent", "party", "supervisor"},
        "agent": {"customer", "party", "supervisor"},
        "party": {"customer", "agent", "supervisor"},
        "supervisor": {"customer", "agent", "party"},
    },
    SupervisorMode.COACH: {
        "customer": {"agent", "party"},
        "agent": {"customer", "party", "supervisor"},
        "party": {"customer", "agent"},
        "supervisor": {"customer", "agent", "party"},
    },
}
FREQ = {"customer": 500.0, "agent": 750.0, "party": 1100.0, "supervisor": 1650.0}


def run_call(engine: MixerEngine, routing: dict[str, LegRouting], ticks: int = 5) -> dict[str, np.ndarray]:
    n = samples_per_frame(engine.rate)
    legs = {name: engine.add_leg("call", r) for name, r in routing.items()}
    heard = {name: [] for name in legs}
    for t in range(ticks):
        for name, leg in legs.items():
            engine.push(leg, tone(FREQ[name], engine.rate, n, amplitude=0.25, start=t * n))
        engine.tick()
        for name, leg in legs.items():
            heard[name].append(engine.output(leg).copy())
    return {name: np.concatenate(frames) for name, frames in heard.items()}


@pytest.mark.parametrize("kernel", ["numpy", "c"])
@pytest.mark.parametrize("rate", [8000, 16000, 48000])
@pytest.mark.parametrize("mode", list(SupervisorMode))
def test_every_listener_hears_exactly_the_table(mode: SupervisorMode, rate: int, kernel: str) -> None:
    engine = MixerEngine(rate=rate, kernel=kernel)
    heard = run_call(engine, {**LEGS, "supervisor": SUPERVISOR_FOR[mode]})
    for listener, signal in heard.items():
        for speaker, freq in FREQ.items():
            db = level_dbfs(signal, freq, rate)
            if speaker == listener:
                assert db <= SILENT_DB, f"{listener} hears own voice at {db:.1f} dB"
            elif speaker in EXPECTED[mode][listener]:
                assert db >= HEARD_DB, f"{listener} should hear {speaker} ({mode}), got {db:.1f} dB"
            else:
                assert db <= SILENT_DB, f"{listener} must not hear {speaker} ({mode}), got {db:.1f} dB"


@pytest.mark.parametrize("flag", ["muted", "held"])
def test_mute_and_hold_by_spectrum(flag: str) -> None:
    engine = MixerEngine(rate=16000)
    routing = {**LEGS, "supervisor": SUPERVISOR_FOR[SupervisorMode.BARGE]}
    routing["customer"] = LegRouting(Role.CUSTOMER, **{flag: True})
    heard = run_call(engine, routing)
    for listener in ("agent", "party", "supervisor"):
        assert level_dbfs(heard[listener], FREQ["customer"], 16000) <= SILENT_DB
        assert level_dbfs(heard[listener], FREQ["supervisor" if listener != "supervisor" else "agent"], 16000) >= HEARD_DB
    customer_hears = [level_dbfs(heard["customer"], FREQ[s], 16000) for s in ("agent", "party", "supervisor")]
    if flag == "held":
        assert max(customer_hears) <= SILENT_DB
    else:
        assert min(customer_hears) >= HEARD_DB


def test_switching_modes_between_ticks_changes_what_is_heard_at_the_next_tick() -> None:
    rate, n = 16000, samples_per_frame(16000)
    engine = MixerEngine(rate=rate)
    c = engine.add_leg(1, LegRouting(Role.CUSTOMER))
    a = engine.add_leg(1, LegRouting(Role.AGENT))
    s = engine.add_leg(1, LegRouting(SUP, SupervisorMode.MONITOR))
    seen = []
    for t, mode in enumerate([SupervisorMode.MONITOR, SupervisorMode.BARGE, SupervisorMode.COACH, SupervisorMode.MONITOR]):
        engine.set_routing(s, replace(engine.routing_of(s), mode=mode))
        for leg, f in ((c, 500), (a, 750), (s, 1650)):
            engine.push(leg, tone(f, rate, n, start=t * n))
        engine.tick()
        seen.append((level_dbfs(engine.output(c), 1650, rate) > HEARD_DB, level_dbfs(engine.output(a), 1650, rate) > HEARD_DB))
    assert seen == [(False, False), (True, True), (False, True), (False, False)]
