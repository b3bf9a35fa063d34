"""Stroke Studio: serve the browser studio over one model.

    python app.py                          # the embedded emoji model on 127.0.0.1:7860
    python app.py --model path/to/folder   # any supported diffusers folder or hub id
    python app.py --share --auth me:secret # a public link (expires after 72 hours), password-protected

Only this file chooses device and dtype, loads weights and starts servers.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="app.py", description="Stroke Studio: paint and edit images with diffusion models in the browser.")
    p.add_argument("--model", default="emoji", help="preset name, diffusers folder or hub id (default: the embedded 'emoji' model)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps... (default: cuda when available, else cpu)")
    p.add_argument("--dtype", default=None, choices=["float32", "float16", "bfloat16"], help="default: float16 on cuda, float32 on cpu")
    # Hugging Face Spaces sets GRADIO_SERVER_NAME=0.0.0.0; locally the studio stays on loopback.
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"), help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)), help="port (default 7860)")
    p.add_argument("--share", action="store_true", help="also open a public Gradio link (anyone with it can use the studio; 72 h)")
    p.add_argument("--auth", default=None, help="USER:PASS, or a file with one USER:PASS per line")
    p.add_argument("--queue-size", type=int, default=16, help="requests that may wait; more are refused with a message (default 16)")
    p.add_argument("--keep-hours", type=float, default=24.0,
                   help="hours the files runs leave (previews, results, uploads) stay on disk; older ones are deleted as new "
                        "runs finish, so that a shared studio does not fill the disk (0 keeps everything; default 24; "
                        "a cache folder you name with GRADIO_TEMP_DIR is left alone)")  # fmt: skip
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: torch's choice; 1 is often fastest on a busy 2-core machine)")
    args = p.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        p.error(f"--threads must be at least 1, got {args.threads}")
    if not 0 <= args.keep_hours < float("inf"):
        p.error(f"--keep-hours must be 0 (keep everything) or a positive number of hours, got {args.keep_hours}")
    if args.queue_size < 1:
        p.error(f"--queue-size must be at least 1, got {args.queue_size}")
    return args


def parse_auth(value: str | None) -> list[tuple[str, str]] | None:
    """USER:PASS or a file of such lines (blank lines and # comments skipped) -> [(user, pass)], with the
    spaces around the colon dropped. A value with no colon, or with a '/' before it, is a file's name: a
    missing file was read as USER:PASS ('./cfg/users:prod.txt' became user './cfg/users'). Errors name
    the file's line by number, never its text (it may be a password)."""
    if value is None:
        return None
    is_file = os.path.isfile(value)
    user_part = value.partition(":")[0]
    if not is_file and (":" not in value or "/" in user_part or os.sep in user_part):
        raise ValueError(f"--auth: no file {value!r}; give USER:PASS, or a file of USER:PASS lines")
    lines = Path(value).read_text().splitlines() if is_file else [value]
    pairs = []
    for number, line in enumerate((x.strip() for x in lines), 1):
        if not line or line.startswith("#"):
            continue
        user, sep, password = (part.strip() for part in line.partition(":"))
        if not sep or not user or not password:
            where = f" file {value!r}, line {number}," if is_file else ""
            raise ValueError(f"--auth{where} expects USER:PASS: a user name, a colon and a password")
        pairs.append((user, password))
    if not pairs:
        raise ValueError(f"--auth file {value!r} has no USER:PASS lines")
    return pairs


def serve(demo, *, host: str = "127.0.0.1", port: int | None = None, share: bool = False, auth=None, queue_size: int = 16,
          keep_hours: float = 24.0, block: bool = True) -> tuple[str, str | None]:  # fmt: skip
    """Queue and launch a studio built by ui.build_ui; returns (local URL, share URL or None).

    keep_hours: how long the files runs leave (every streamed preview, results with their recipes,
    uploads) stay on disk; 0 keeps them all (ui/retention.py)."""
    from ui import CSS, JS, THEME
    from ui.recipe import RESULTS_ROOT, output_dir
    from ui.retention import STUDIO_GRADIO_CACHE, Retention

    if keep_hours > 0:  # the Gradio cache only when it is the studio's own (ui/retention.py says why)
        own = [Path(demo.GRADIO_CACHE)] if Path(demo.GRADIO_CACHE) == STUDIO_GRADIO_CACHE else []
        page = {f for files in demo.temp_file_sets for f in files}  # cached while the page was built: the examples
        # every studio's results folder (this one's and those of studios run before), the folder kept
        Retention.keep(keep_hours * 3600, RESULTS_ROOT, *own, protect={*page, str(output_dir())})
        Retention.prune()  # what stopped studios left: at start, not only when the first run finishes
    # One model, one worker: events share concurrency_id "model", limited to one at a time.
    demo.queue(max_size=queue_size, default_concurrency_limit=1)
    _, local_url, share_url = demo.launch(server_name=host, server_port=port, share=share, auth=auth, theme=THEME, css=CSS, js=JS,
                                          prevent_thread_lock=True, quiet=True, show_error=True)  # fmt: skip
    if block:
        print(f"Stroke Studio is running at {local_url}", flush=True)
        if share_url:
            print(f"Public share link (anyone with it can use this studio; it expires after 72 hours): {share_url}", flush=True)
        elif share:
            print("No public share link: Gradio could not open its tunnel (it needs network access, and downloads its "
                  "frpc client the first time; its message above says more); the studio runs on the local address only.",
                  flush=True)  # fmt: skip
        demo.block_thread()
    return local_url, share_url


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        auth = parse_auth(args.auth)
    except (OSError, ValueError) as e:
        print(f"app.py: {e}", file=sys.stderr)
        return 2
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)  # before the model loads: the thread pool is process-wide
    from editing.backend import EngineBackend
    from editing.models import ModelNotFoundError

    try:
        backend = EngineBackend.load(args.model, device=args.device, dtype=args.dtype)
    except (ModelNotFoundError, ValueError, RuntimeError) as e:
        print(f"app.py: {e}", file=sys.stderr)
        return 2
    import ui
    from ui.retention import use_own_gradio_cache

    use_own_gradio_cache()  # before build_ui: each Gradio block reads its cache folder when made
    serve(ui.build_ui(backend), host=args.host, port=args.port, share=args.share, auth=auth, queue_size=args.queue_size,
          keep_hours=args.keep_hours)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
