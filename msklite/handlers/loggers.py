"""The BROKER_LOGGER resource: msklite's Python loggers under Kafka's log4j names and levels.

Kafka lists `root` and every logger log4j knows; msklite lists `root` and its own loggers
(`msklite...`). Levels are log4j's (FATAL, ERROR, WARN, INFO, DEBUG, TRACE); TRACE is a level
below Python's DEBUG. The loggers belong to the process, so a change made through one broker
shows on every broker of the cluster (DEVIATIONS.md)."""

from __future__ import annotations

import logging

from msklite.errors import ErrorCode, KafkaError

ROOT = "root"
TRACE = 5
_TO_PYTHON = {
    "FATAL": logging.CRITICAL,
    "ERROR": logging.ERROR,
    "WARN": logging.WARNING,
    "INFO": logging.INFO,
    "DEBUG": logging.DEBUG,
    "TRACE": TRACE,
}
VALID_LEVELS = ", ".join(sorted(_TO_PYTHON))


def _level_name(level: int) -> str:
    for name, number in sorted(_TO_PYTHON.items(), key=lambda kv: kv[1]):
        if level <= number:
            return name
    return "OFF"


def _logger(name: str) -> logging.Logger | None:
    if name == ROOT:
        return logging.getLogger()
    found = logging.Logger.manager.loggerDict.get(name)
    return found if isinstance(found, logging.Logger) else None


def current() -> dict[str, str]:
    """Logger name -> effective level, `root` first."""
    out = {ROOT: _level_name(logging.getLogger().getEffectiveLevel())}
    for name in sorted(logging.Logger.manager.loggerDict):
        logger = _logger(name)
        if logger is not None and (name == "msklite" or name.startswith("msklite.")):
            out[name] = _level_name(logger.getEffectiveLevel())
    return out


def check(name: str, level: str | None) -> None:
    """Refuse a SET (`level`) or DELETE (None) as Kafka's RuntimeLoggerManager does."""
    if _logger(name) is None or (name != ROOT and name not in current()):
        raise KafkaError(ErrorCode.INVALID_CONFIG, f"Logger {name} does not exist!")
    if level is None:
        if name == ROOT:
            raise KafkaError(
                ErrorCode.INVALID_REQUEST,
                "Removing the log level of the root logger is not allowed",
            )
    elif level not in _TO_PYTHON:
        raise KafkaError(
            ErrorCode.INVALID_CONFIG,
            f"Cannot set the log level of {name} to {level} as it is not a supported log level. "
            f"Valid log levels are {VALID_LEVELS}",
        )


def set_level(name: str, level: str | None) -> None:
    """Set a checked logger's level; None returns it to its parent's."""
    logger = _logger(name)
    assert logger is not None
    logger.setLevel(logging.NOTSET if level is None else _TO_PYTHON[level])
