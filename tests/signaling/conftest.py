import pytest
from helpers.inprocess import Harness


@pytest.fixture
def h() -> Harness:
    return Harness()
