import pytest
from bargein.signaling.inprocess import Harness


@pytest.fixture
def h() -> Harness:
    return Harness()
