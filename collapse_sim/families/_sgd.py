"""Options shared by the SGD fitters of every family (private)."""

from __future__ import annotations

from .._validation import MAX_INT, MAX_ITERATIONS, check_choice, check_int, check_real

_SCHEDULES = ("constant", "inverse_time")


def _check_options(fit, inits: tuple[str, ...]) -> None:
    """The options every SGD fitter shares, checked on construction."""
    check_real("learning_rate", fit.learning_rate, low=0.0, low_open=True)
    check_int("batch_size", fit.batch_size, minimum=1, maximum=MAX_INT)
    check_int("epochs", fit.epochs, minimum=1, maximum=MAX_ITERATIONS)
    check_choice("init", fit.init, inits)
    check_real("momentum", fit.momentum, low=0.0, high=1.0, high_open=True)
    check_choice("lr_schedule", fit.lr_schedule, _SCHEDULES)
    check_real("gradient_noise", fit.gradient_noise, low=0.0)
