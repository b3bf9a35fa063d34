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
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: torch's choice; 1 is often fastest on a busy 2-core machine)")
    args = p.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        p.error(f"--threads must be at least 1, got {args.threads}")
    if args.queue_size < 1:
        p.error(f"--queue-size must be at least 1, got {args.queue_size}")
    return args


def parse_auth(value: str | None) -> list[tuple[str, str]] | None:
    """USER:PASS or a file of such lines (blank lines and # comments skipped) -> [(user, pass)]."""
    if value is None:
        return None
    lines = Path(value).read_text().splitlines() if os.path.isfile(value) else [value]
    pairs = []
    for line in (x.strip() for x in lines):
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user or not password:
            raise ValueError(f"--auth expects USER:PASS (or a file of USER:PASS lines), got {line!r}")
        pairs.append((user, password))
    if not pairs:
        raise ValueError(f"--auth file {value!r} has no USER:PASS lines")
    return pairs


def serve(demo, *, host: str = "127.0.0.1", port: int | None = None, share: bool = False, auth=None, queue_size: int = 16,
          block: bool = True) -> tuple[str, str | None]:  # fmt: skip
    """Queue and launch a studio built by ui.build_ui; returns (local URL, share URL or None)."""
    from ui import CSS, THEME

    # One model, one worker: events share concurrency_id "model", limited to one at a time.
    demo.queue(max_size=queue_size, default_concurrency_limit=1)
    _, local_url, share_url = demo.launch(server_name=host, server_port=port, share=share, auth=auth, theme=THEME, css=CSS,
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

    serve(ui.build_ui(backend), host=args.host, port=args.port, share=args.share, auth=auth, queue_size=args.queue_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
