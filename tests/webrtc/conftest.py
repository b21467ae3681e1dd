"""The gateway rig most WebRTC tests share: 48 kHz, encodes on the loop (the media workers' way), clock running.
``test_gateway.py`` has its own ``rig`` (rates and encode modes as parameters), which takes precedence there."""

from collections.abc import AsyncIterator

import pytest
from helpers.gateway_rig import GatewayRig


@pytest.fixture
async def rig() -> AsyncIterator[GatewayRig]:
    r = GatewayRig(48000, encode_inline=True)
    r.clock.start()
    yield r
    await r.close()
