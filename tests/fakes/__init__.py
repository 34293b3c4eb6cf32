"""Shared test doubles: fake executables on PATH (``executables``)."""

from tests.fakes.executables import Call, FakeBin, FakeExecutable, Reply, fake_bin

__all__ = ["Call", "FakeBin", "FakeExecutable", "Reply", "fake_bin"]
