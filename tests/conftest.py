"""Fixtures shared by the unit tests (the repository's conftest.py configures nbval)."""

import pytest

from lib.core.claims import strict


@pytest.fixture
def strict_checkers():
    """Checkers raise only in strict mode (as under `make test`); a learner's notebook gets a printed ✗.
    Exercise tests use it for every test: ``pytestmark = pytest.mark.usefixtures("strict_checkers")``."""
    with strict():
        yield


@pytest.fixture(autouse=True)
def _grad_mode_restored():
    """A test that runs notebook code may switch gradients off globally; the next test gets them back."""
    import torch

    enabled = torch.is_grad_enabled()
    yield
    torch.set_grad_enabled(enabled)
