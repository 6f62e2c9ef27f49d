"""Fixtures shared by the tests (the plain helpers are in helpers.py)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import helpers
from helpers import smooth_image, tiny_seg_weights


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    """torch on one thread for the test (fast and steady on a small, busy CI machine)."""
    with helpers.one_thread():
        yield


@pytest.fixture
def sr_folder(tmp_path):
    """A folder of 4 small RGB images and 1 grayscale image."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "hr"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(smooth_image(rng, 60 + 4 * i, 72)).save(folder / f"im{i}.png")
    Image.fromarray(smooth_image(rng, 64, 64, 1)).save(folder / "gray.png")
    return folder


@pytest.fixture(scope="session")
def camvid_weights(tmp_path_factory) -> Path:
    """tiny_seg_weights of CamVid, written once per test session."""
    return tiny_seg_weights(tmp_path_factory.mktemp("seg_weights") / "camvid_tiny.pt")
