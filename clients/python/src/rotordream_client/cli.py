"""``rotordream-ctl``: the camera from the command line.

Exit status: 0 on success, 1 on an API or connection error (its code and message on
stderr), 2 on a usage error.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable, Optional, Tuple

import click

from . import __version__
from .camera import Camera
from .errors import ApiError, RotorDreamError


def parse_value(text: str) -> Any:
    """A command-line value: JSON when it parses (75, true, "x", [1]), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def emit(ctx: click.Context, data: Any, human: Optional[Callable[[Any], None]] = None) -> None:
    """Print ``data``: JSON with --json (or without a human form), else the human form."""
    if ctx.obj["json"] or human is None:
        click.echo(json.dumps(data, indent=None if ctx.obj["json"] else 2, sort_keys=True))
    else:
        human(data)


def show_pairs(data: Any) -> None:
    """``key: value`` lines."""
    for key, value in data.items():
        click.echo("%s: %s" % (key, json.dumps(value) if not isinstance(value, str) else value))


def camera(ctx: click.Context) -> Camera:
    """The Camera for the global options (made once)."""
    o = ctx.obj
    if "camera" not in o:
        if not o["url"]:
            raise click.UsageError("no camera URL: give --url or set ROTORDREAM_URL")
        o["camera"] = Camera(o["url"], o["user"], o["password"], o["token"], auth=o["auth"],
                             verify=o["verify"], wait_rate_limited=o["wait"])
        ctx.call_on_close(o["camera"].close)
    return o["camera"]


class ApiGroup(click.Group):
    """Turns ApiError into exit status 1 with the code on stderr."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ApiError as e:
            click.echo("error: %s (%s%s)" % (e.message, e.code,
                                             ", key %s" % e.key if e.key else ""), err=True)
            ctx.exit(1)
        except RotorDreamError as e:
            click.echo("error: %s" % e, err=True)
            ctx.exit(1)


@click.group(cls=ApiGroup)
@click.option("--url", envvar="ROTORDREAM_URL", help="Camera base URL (env ROTORDREAM_URL)")
@click.option("--user", envvar="ROTORDREAM_USER", help="User name (env ROTORDREAM_USER)")
@click.option("--password", envvar="ROTORDREAM_PASSWORD",
              help="Password (env ROTORDREAM_PASSWORD)")
@click.option("--token", envvar="ROTORDREAM_TOKEN", help="Bearer token (env ROTORDREAM_TOKEN)")
@click.option("--auth", type=click.Choice(["digest", "basic"]), default="digest",
              show_default=True, help="HTTP authentication for the password")
@click.option("--cacert", type=click.Path(exists=True, dir_okay=False),
              help="Trust this (self-signed) certificate for HTTPS")
@click.option("--insecure", is_flag=True, help="Do not verify the HTTPS certificate")
@click.option("--wait", is_flag=True, help="Wait out rate limits instead of failing")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output")
@click.version_option(__version__)
@click.pass_context
def main(ctx: click.Context, url: str, user: str, password: str, token: str, auth: str,
         cacert: str, insecure: bool, wait: bool, as_json: bool) -> None:
    """Control a RotorDream camera."""
    ctx.ensure_object(dict)
    ctx.obj.update(url=url, user=user, password=password, token=token, auth=auth, wait=wait,
                   verify=cacert or (not insecure), json=as_json)


@main.command()
@click.pass_context
def info(ctx: click.Context) -> None:
    """Product, version, capabilities and stream URLs."""
    emit(ctx, camera(ctx).info())


@main.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Uptime, load, disk, recording and clients."""
    emit(ctx, camera(ctx).status())


@main.command()
@click.argument("keys", nargs=-1, required=True)
@click.pass_context
def get(ctx: click.Context, keys: Tuple[str, ...]) -> None:
    """Print settings (KEY... or "*" for all)."""
    cam = camera(ctx)
    data = cam.get_all() if keys == ("*",) else cam.get(*keys)
    emit(ctx, data, show_pairs)


@main.command(name="set")
@click.argument("pairs", nargs=-1, required=True)
@click.pass_context
def set_(ctx: click.Context, pairs: Tuple[str, ...]) -> None:
    """Set KEY=VALUE... in one batch (values are JSON, else strings)."""
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter("%r is not KEY=VALUE" % pair, param_hint="PAIRS")
        values[key] = parse_value(value)
    emit(ctx, camera(ctx).set(values), show_pairs)


@main.command()
@click.argument("keys", nargs=-1)
@click.option("--initial", is_flag=True, help="Print the current values first")
@click.pass_context
def watch(ctx: click.Context, keys: Tuple[str, ...], initial: bool) -> None:
    """Print each change as a JSON line (all keys or KEY...); reconnects on its own."""
    try:
        for change in camera(ctx).watch(list(keys) or None, initial=initial):
            click.echo(json.dumps(change, sort_keys=True))
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass


@main.command()
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="JPEG file to write ('-' for stdout)")
@click.option("--quality", type=click.IntRange(1, 100), help="JPEG quality 1-100")
@click.pass_context
def snapshot(ctx: click.Context, output: str, quality: Optional[int]) -> None:
    """Save a JPEG of the latest frame."""
    data = camera(ctx).snapshot(quality)
    if output == "-":
        sys.stdout.buffer.write(data)
        return
    with open(output, "wb") as f:
        f.write(data)
    emit(ctx, {"file": output, "bytes": len(data)},
         lambda d: click.echo("%s: %d bytes" % (d["file"], d["bytes"])))


@main.command()
@click.argument("action", type=click.Choice(["start", "stop", "pause", "resume", "status"]))
@click.option("--name", help="Recording name (start)")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True),
              help="Stop after this many seconds (start)")
@click.pass_context
def record(ctx: click.Context, action: str, name: Optional[str],
           duration: Optional[float]) -> None:
    """Start, stop, pause, resume the recording or show its status."""
    rec = camera(ctx).recording
    if action == "start":
        data = rec.start(name=name, duration=duration)
    else:
        data = getattr(rec, action)()
    emit(ctx, data, show_pairs)


@main.group()
def recordings() -> None:
    """List, download and delete recordings."""


@recordings.command(name="list")
@click.option("--since", help="Only since this time (epoch seconds or ISO 8601 UTC)")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many")
@click.pass_context
def recordings_list(ctx: click.Context, since: Optional[str], limit: Optional[int]) -> None:
    """Recordings, newest first (every page)."""
    items = list(camera(ctx).recordings.list(since=parse_since(since), limit=limit))

    def table(rows: Any) -> None:
        for r in rows:
            click.echo("%s\t%s\t%s bytes\t%s" % (r.get("id"), r.get("start", ""), r.get("size"),
                                                 r.get("name") or ""))
    emit(ctx, items, table)


def parse_since(text: Optional[str]) -> Any:
    """Epoch seconds as a number, anything else passed on (ISO 8601)."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return text


@recordings.command(name="download")
@click.argument("id")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="File (default ID.mp4)")
@click.pass_context
def recordings_download(ctx: click.Context, id: str, output: Optional[str]) -> None:
    """Download a recording (resumes a partial file); a progress bar on a terminal."""
    cam = camera(ctx)
    path = output or "%s.mp4" % id
    if sys.stdout.isatty() and not ctx.obj["json"]:
        with Bar(id) as bar:
            cam.recordings.download(id, path, progress=bar.update)
    else:
        cam.recordings.download(id, path)
    emit(ctx, {"id": id, "file": path, "bytes": os.path.getsize(path)},
         lambda d: click.echo("%s: %d bytes" % (d["file"], d["bytes"])))


class Bar:
    """A click progress bar fed with (bytes done, total) as a download reports them."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Any = None
        self.shown = 0

    def update(self, done: int, total: Optional[int]) -> None:
        """Advance the bar to ``done`` bytes (made on the first report, when the total
        is known)."""
        if self.bar is None:
            self.bar = click.progressbar(length=total or 0, label=self.label, show_pos=True)
            self.bar.__enter__()
        self.bar.update(done - self.shown)
        self.shown = done

    def __enter__(self) -> "Bar":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


@recordings.command(name="delete")
@click.argument("id")
@click.pass_context
def recordings_delete(ctx: click.Context, id: str) -> None:
    """Delete a recording."""
    emit(ctx, camera(ctx).recordings.delete(id), show_pairs)


@main.group()
def ptz() -> None:
    """Pan/tilt: move, stop, home, presets, goto."""


@ptz.command(name="move")
@click.option("--pan", type=float, help="Pan target, degrees")
@click.option("--tilt", type=float, help="Tilt target, degrees")
@click.option("--velocity", nargs=2, type=float, metavar="PAN TILT",
              help="Move continuously at these velocities (-1..1) instead")
@click.option("--timeout", type=float, help="Seconds a continuous move lasts")
@click.pass_context
def ptz_move(ctx: click.Context, pan: Optional[float], tilt: Optional[float],
             velocity: Optional[Tuple[float, float]], timeout: Optional[float]) -> None:
    """Move to --pan/--tilt degrees, or --velocity PAN TILT continuously."""
    cam = camera(ctx)
    if velocity:
        cam.ptz.continuous(velocity[0], velocity[1], timeout)
        emit(ctx, {"moving": True, "velocity": list(velocity)}, lambda d: click.echo("moving"))
        return
    if pan is None and tilt is None:
        raise click.UsageError("give --pan, --tilt or --velocity")
    emit(ctx, cam.ptz.move(pan, tilt), show_pairs)


@ptz.command(name="stop")
@click.pass_context
def ptz_stop(ctx: click.Context) -> None:
    """Stop the axes."""
    camera(ctx).ptz.stop()
    emit(ctx, {"stopped": True}, lambda d: click.echo("stopped"))


@ptz.command(name="home")
@click.pass_context
def ptz_home(ctx: click.Context) -> None:
    """Go to the home position."""
    emit(ctx, camera(ctx).ptz.home(), show_pairs)


@ptz.command(name="presets")
@click.pass_context
def ptz_presets(ctx: click.Context) -> None:
    """List the presets."""
    def table(rows: Any) -> None:
        for p in rows:
            click.echo("%s\t%s" % (p["token"], p["name"]))
    emit(ctx, camera(ctx).ptz.presets(), table)


@ptz.command(name="goto")
@click.argument("preset")
@click.pass_context
def ptz_goto(ctx: click.Context, preset: str) -> None:
    """Move to a preset (its token or name)."""
    cam = camera(ctx)
    token = preset
    for p in cam.ptz.presets():
        if preset in (p["token"], p["name"]):
            token = p["token"]
            break
    cam.ptz.goto(token)
    emit(ctx, {"preset": token}, lambda d: click.echo("moving to %s" % d["preset"]))


@main.group()
def users() -> None:
    """User management (admins)."""


@users.command(name="list")
@click.pass_context
def users_list(ctx: click.Context) -> None:
    """Every user and its role."""
    def table(rows: Any) -> None:
        for u in rows:
            click.echo("%s\t%s" % (u["username"], u["role"]))
    emit(ctx, camera(ctx).users.list(), table)


@users.command(name="add")
@click.argument("username")
@click.option("--role", type=click.Choice(["admin", "operator", "viewer", "guest"]),
              default="viewer", show_default=True)
@click.option("--new-password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="The user's password (prompted when not given)")
@click.pass_context
def users_add(ctx: click.Context, username: str, role: str, new_password: str) -> None:
    """Create a user."""
    emit(ctx, camera(ctx).users.add(username, new_password, role), show_pairs)


@users.command(name="passwd")
@click.argument("username")
@click.option("--new-password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="The new password (prompted when not given)")
@click.option("--current", help="Your current password (when changing your own, not admin)")
@click.pass_context
def users_passwd(ctx: click.Context, username: str, new_password: str,
                 current: Optional[str]) -> None:
    """Set a user's password."""
    emit(ctx, camera(ctx).users.passwd(username, new_password, current), show_pairs)


@users.command(name="delete")
@click.argument("username")
@click.pass_context
def users_delete(ctx: click.Context, username: str) -> None:
    """Delete a user."""
    emit(ctx, camera(ctx).users.delete(username), show_pairs)


if __name__ == "__main__":  # pragma: no cover
    main()
