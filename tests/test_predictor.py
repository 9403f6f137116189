"""How a batch of images is split into calls of fixed-batch engines."""

import numpy as np
from yoloforge.engines.predictor import batching_gain, plan_batches, run_batches

CPU = {1: 6.0, 8: 47.0}  # ms per call: a batch-8 call costs about eight single ones
GPU = {1: 1.6, 8: 2.2}  # ms per call: eight images cost little more than one


def test_on_a_cpu_a_part_batch_runs_as_single_calls():
    assert plan_batches(4, CPU) == [1, 1, 1, 1]


def test_on_a_gpu_a_part_batch_is_padded_to_the_large_engine():
    assert plan_batches(4, GPU) == [8]


def test_full_batches_go_to_the_large_engine_and_the_rest_as_cheapest():
    assert plan_batches(20, GPU) == [8, 8, 8]
    assert plan_batches(17, {1: 6.0, 8: 40.0}) == [8, 8, 1]


def test_a_single_engine_size_pads_the_last_call():
    assert plan_batches(5, {4: 10.0}) == [4, 4]


class Doubler:
    """An engine of fixed batch that records the batch sizes it was called with."""

    def __init__(self, batch: int, calls: list[int]) -> None:
        self.batch, self.calls = batch, calls

    def infer(self, x: np.ndarray) -> list[np.ndarray]:
        assert len(x) == self.batch, "an engine got a batch of another size"
        self.calls.append(len(x))
        return [x * 2]


def test_run_batches_follows_the_plan_and_returns_one_row_per_image():
    calls: list[int] = []
    engines = {1: Doubler(1, calls), 8: Doubler(8, calls)}
    x = np.arange(10, dtype=np.float32).reshape(10, 1)
    (out,) = run_batches(engines, x, [8, 1, 1])
    assert calls == [8, 1, 1] and np.array_equal(out, x * 2)
    calls.clear()
    (out,) = run_batches(engines, x[:3], [8])  # padded, trimmed
    assert calls == [8] and np.array_equal(out, x[:3] * 2)


def test_batching_gain_is_the_per_image_saving_of_the_best_batch():
    assert batching_gain(GPU) == 1.6 / (2.2 / 8)
    assert batching_gain({1: 6.0, 8: 48.0}) == 1.0
    assert batching_gain({8: 40.0}) == 1.0  # no single-image engine to compare with
