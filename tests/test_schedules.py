"""Composable, serializable learning-rate schedules."""

import keras
import pytest

from keras_hubkit import errors
from keras_hubkit import schedules


def approx(value, rel=1e-5, abs=1e-9):
    return pytest.approx(value, rel=rel, abs=abs)


def _at(schedule, step):
    return float(schedule(step))


def test_primitives():
    assert _at(schedules.Constant(1e-3), 10) == approx(1e-3)
    assert _at(schedules.Linear(0.0, 1.0, 10), 5) == approx(0.5)
    assert _at(schedules.Linear(0.0, 1.0, 10), 50) == approx(1.0)
    assert _at(schedules.Cosine(1.0, 0.0, 10), 5) == approx(0.5)
    assert _at(schedules.Scaled(schedules.Constant(2.0), 0.25), 3) == 0.5


def test_warmup_cosine_joins_at_the_boundary():
    s = schedules.warmup_cosine(1.0, total_steps=100, warmup_steps=10)
    assert _at(s, 0) == approx(0.0)
    assert _at(s, 5) == approx(0.5)
    assert _at(s, 10) == approx(1.0)
    assert _at(s, 55) == approx(0.5)
    assert _at(s, 100) == approx(0.0, abs=1e-7)


def test_one_cycle_matches_fastai_defaults():
    s = schedules.one_cycle(2e-3, total_steps=100)
    assert _at(s, 0) == approx(2e-3 / 25)
    assert _at(s, 25) == approx(2e-3)
    assert _at(s, 100) == approx(2e-3 / 1e5, rel=1e-3)


def test_slanted_triangular_matches_ulmfit():
    s = schedules.slanted_triangular(1e-2, total_steps=100)
    assert _at(s, 0) == approx(1e-2 / 32)
    assert _at(s, 10) == approx(1e-2)
    assert _at(s, 100) == approx(1e-2 / 32)


@pytest.mark.parametrize(
    "schedule",
    [
        schedules.Constant(0.1),
        schedules.Linear(0.0, 0.1, 5),
        schedules.Cosine(0.1, 0.0, 5),
        schedules.Scaled(schedules.Cosine(0.1, 0.0, 5), 0.5),
        schedules.one_cycle(0.1, 20),
        schedules.slanted_triangular(0.1, 20),
    ],
)
def test_get_config_round_trips(schedule):
    config = keras.saving.serialize_keras_object(schedule)
    clone = keras.saving.deserialize_keras_object(config)
    assert clone.get_config() == schedule.get_config()
    for step in (0, 3, 7, 19):
        assert _at(clone, step) == approx(_at(schedule, step))


def test_schedule_drives_a_keras_optimizer():
    optimizer = keras.optimizers.SGD(schedules.Linear(0.0, 1.0, 4))
    variable = keras.Variable(1.0)
    for _ in range(2):
        optimizer.apply([keras.ops.ones(())], [variable])
    assert float(optimizer.learning_rate) == approx(0.5)


def test_join_checks_boundaries():
    with pytest.raises(errors.ScheduleError, match="one boundary fewer"):
        schedules.Join([schedules.Constant(1.0)], [3])
    with pytest.raises(ValueError, match="increasing boundaries"):
        schedules.Join([schedules.Constant(1.0)] * 3, [5, 2])


def test_exponential_sweeps_geometrically():
    s = schedules.Exponential(1e-6, 1.0, 60)
    assert _at(s, 0) == approx(1e-6)
    assert _at(s, 30) == approx(1e-3, rel=1e-4)
    assert _at(s, 60) == approx(1.0, rel=1e-4)
    assert _at(s, 600) == approx(1.0, rel=1e-4)
    again = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(s)
    )
    assert _at(again, 45) == approx(_at(s, 45))
