"""The roofline meets its error targets against Vidur's real A100/H100 operator measurements."""

import pytest

from profiles.calibration import TARGETS, measurements_dir

pytestmark = pytest.mark.skipif(not measurements_dir().exists(),
                                reason=f"GPU measurements not found at {measurements_dir()} (../shared/data absent)")


@pytest.fixture(scope="module")
def errors():
    from profiles.calibration import operator_errors
    return operator_errors()


def test_covers_every_gpu_model_tp_and_token_count(errors):
    assert set(errors.gpu) == {"a100", "h100"}
    assert set(errors.tp) == {1, 2, 4, 8}
    assert errors.num_tokens.min() == 1 and errors.num_tokens.max() == 4096
    assert len(errors) == 4 * 1044 * 10  # 4 files x 1044 rows x (9 operators + the layer)


def test_gemm_and_layer_targets(errors):
    from profiles.calibration import error_table, target_failures
    table = error_table(errors)
    assert len(table) == 16  # 2 GPUs x 2 models x 4 TP degrees
    assert target_failures(table) == []
    assert (table.gemm < TARGETS["gemm"]).all() and (table.layer < TARGETS["layer"]).all()


def test_target_check_can_fail(errors):
    from profiles.calibration import error_table, target_failures
    worse = errors.assign(abs_error=errors.abs_error * 3)
    assert any("gemm: median error" in line for line in target_failures(error_table(worse)))


def test_network_models_within_fifteen_percent():
    from profiles.calibration import network_errors
    assert (network_errors().median_abs_error < 0.15).all()
