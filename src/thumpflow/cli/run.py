"""`thumpflow run` and `thumpflow check`."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

from thumpflow.cli.check_messages import transform_problems
from thumpflow.cli.logs import configure
from thumpflow.config.lint import lint
from thumpflow.config.loader import load_located
from thumpflow.config.model import Config
from thumpflow.config.secrets import missing_in_environment
from thumpflow.core.errors import ConfigError, ThumpflowError
from thumpflow.runtime.engine import Engine
from thumpflow.runtime.heap import freeze_startup_heap
from thumpflow.runtime.transform_modules import (
    add_transforms_path,
    channel_transforms,
    load_record_transform,
)


def check(path: str, *, strict: bool = False, messages: list[str] | None = None) -> int:
    """Validate a configuration file, then lint it for integration anti-patterns.

    Errors (the file cannot be used) exit 1 with every located problem,
    including secret references (environment variables, files) that `run`
    could not resolve here. With `messages`, every channel's transforms run
    on those messages as the engine runs them (`cli.check_messages`), and
    each refusal is a problem too. Lint findings are printed as warnings;
    they fail the check only with `strict`.
    """
    located = load_located(path)
    config = located.config
    add_transforms_path(config.transforms_path)
    missing = missing_in_environment(config, located.where)
    if missing:
        raise ConfigError(missing)
    for channel in config.channels:
        channel_transforms(channel)
    for job in config.jobs:
        if job.transform:
            load_record_transform(job.transform, job.id)
    if messages:
        refused = transform_problems(config, messages)
        if refused:
            raise ConfigError(refused)
    destinations = sum(len(channel.destinations) for channel in config.channels)
    print(
        f"{path}: OK: {len(config.channels)} channel(s), {destinations} destination(s), "
        f"{len(config.jobs)} job(s)"
    )
    findings = lint(config)
    for finding in findings:
        print(f"{path}: {finding}")
    return 1 if strict and findings else 0


def run(path: str, log_level: str, log_format: str) -> int:
    """Run the engine until SIGINT or SIGTERM, then stop it cleanly; SIGHUP reloads.

    SIGHUP (what `systemctl reload` sends) re-reads the file and applies it
    channel by channel (`Engine.reload_file`); a file that does not
    validate is refused with its located problems logged, and the running
    configuration stays.

    Logs go to stderr as text or JSON lines (`cli.logs`; `auto`: text on a
    terminal, JSON otherwise). A secret reference that cannot be resolved
    stops it before it starts, located as `check` locates it.
    """
    located = load_located(path)
    config = located.config
    missing = missing_in_environment(config, located.where)
    if missing:
        raise ConfigError(missing)
    configure(log_level, log_format, sys.stderr)
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(config, Path(path)))
    else:
        uvloop.run(_serve(config, Path(path)))
    return 0


async def _serve(config: Config, path: Path) -> None:
    log = logging.getLogger("thumpflow")
    engine = Engine(config)
    engine.config_path = path
    await engine.start()
    server = None
    if config.api.enabled:
        # Imported only here: FastAPI, Starlette and uvicorn add about 17 MB to an
        # engine that serves no API.
        from thumpflow.api.server import start_api

        try:
            server = await start_api(engine)
        except BaseException:
            await engine.stop()
            raise
        log.info(
            "API and dashboard on %s://%s:%d/ (metrics on /metrics)",
            "https" if config.api.tls is not None else "http",
            config.api.host,
            server.port,
        )
    freeze_startup_heap()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    reloads: set[asyncio.Task[None]] = set()

    def on_hangup() -> None:
        task = asyncio.create_task(_reload(engine, log))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    log.info("thumpflow running with %d channel(s); Ctrl-C stops", len(engine.channels))
    try:
        await stopping.wait()
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
        for task in list(reloads):
            await asyncio.gather(task, return_exceptions=True)
        log.info("stopping: finishing in-flight messages")
        if server is not None:
            await server.close()
        await engine.stop()


async def _reload(engine: Engine, log: logging.Logger) -> None:
    """One SIGHUP: reload, or log why not (the running configuration stays)."""
    log.info("SIGHUP: reloading the configuration from %s", engine.config_path)
    try:
        await engine.reload_file("SIGHUP")
    except ConfigError as err:
        for problem in err.problems:
            log.error("reload refused: %s", problem)
        log.error("reload refused; the running configuration stays")
    except ThumpflowError as err:
        log.error("reload: %s", err)
