"""Shared fixtures for the ndstream test suite.

Every test gets the array module under test from the ``da`` fixture, so the
same tests can be run against real Dask to check that they test Dask's
behaviour (which ndstream promises to copy)::

    NDSTREAM_TEST_MODULE=dask.array python -m pytest python/tests

``NDSTREAM_TEST_MODULE`` defaults to ``ndstream``. Tests of ndstream-only
extras carry the ``ndstream_only`` marker and are skipped when the module
under test is Dask.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from _helpers import IS_DASK, MODULE_NAME


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "ndstream_only: tests of ndstream-specific extras (skipped when "
        "NDSTREAM_TEST_MODULE is dask.array)",
    )


def pytest_report_header(config):
    return f"array module under test: {MODULE_NAME} (NDSTREAM_TEST_MODULE)"


def pytest_collection_modifyitems(config, items):
    if not IS_DASK:
        return
    skip = pytest.mark.skip(reason=f"ndstream-only extra; module under test is {MODULE_NAME}")
    for item in items:
        if "ndstream_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def da():
    """The array module under test (``ndstream`` or ``dask.array``)."""
    return importlib.import_module(MODULE_NAME)


@pytest.fixture(scope="session")
def module_name():
    return MODULE_NAME


@pytest.fixture
def rng():
    """A fresh, fixed-seed NumPy generator for test data."""
    return np.random.default_rng(20240601)
