import pytest

from signaling.inprocess import Harness


@pytest.fixture
def h() -> Harness:
    return Harness()
