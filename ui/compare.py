"""Compare: sweeps with metrics, the realism-faithfulness plot, t0 binary search, methods side by side.

SDEdit's central trade-off (paper, Fig. 3): larger t0 gives more realistic but less faithful
results. A sweep shows it; the "More faithful" / "More realistic" buttons walk it by bisection,
the interactive use the paper suggests: each click halves the interval that t0 can still be in.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import gradio as gr
import numpy as np
import pandas as pd

from editing.interface import EditConfig, Frame, Guide, ImagicConfig, InversionConfig, SDEditConfig
from editing.recipe import batch_record
from ui.defaults import studio_default
from ui.handlers import (
    IMAGIC_MISSING,
    STAGES,
    Refusal,
    Show,
    Studio,
    Updates,
    check_skip,
    guarded,
    has_imagic,
    make_config,
    progress_html,
    read_canvas,
    refuse,
    text_edit_missing,
    to_canvas,
)
from ui.recipe import save_run
from ui.state import RunRecord, Session, SweepItem, image_key

Param = Literal["t0", "T_skip", "eta"]
NO_REALISM = "realism: needs the emoji encoder"
# the Metrics table's score columns after value and seed, and what a row shows where a score is missing
TABLE_SCORES = (("l2", ""), ("ssim", ""), ("realism", "needs the emoji encoder"), ("alignment", "needs a prompt and the emoji encoder"),
                ("alignment_gain", "text edits only"))  # fmt: skip


SHOWN = {"eta": "η"}  # parameter names as the page shows them


def sweep_values(param: Param, n: int, steps: int) -> list[float]:
    """n evenly spaced values over the parameter's useful range (T_skip: whole steps, no repeats)."""
    if param in ("t0", "eta"):  # both live in (0, 1]
        return [round(float(v), 3) for v in np.linspace(0.1, 1.0, n)]
    return sorted({int(round(v)) for v in np.linspace(0, 0.8 * (steps - 1), n)})


def caption(label: str, m: dict[str, float]) -> str:
    realism = f"realism {m['realism']:.3f}" if "realism" in m else NO_REALISM
    alignment = f" · alignment {m['alignment']:.3f}" if "alignment" in m else ""
    alignment += f" (gain {m['alignment_gain']:+.3f})" if "alignment_gain" in m else ""
    return f"{label} · L2 {m['l2']:.3f} · SSIM {m['ssim']:.3f} · {realism}{alignment}"


def y_metric(items: list[SweepItem]) -> str:
    """The plot's y: for text edits (T_skip and eta sweeps) the alignment gain towards the target prompt
    (the inversion paper plots CLIP score to the target against LPIPS; on the emoji encoder the gain
    over the source prompt is what follows T_skip); for SDEdit (t0) realism, as SDEdit's paper plots it
    against L2; SSIM where the backend has neither score."""
    m = items[0].metrics if items else {}
    if "alignment_gain" in m:
        return "alignment_gain"
    return "realism" if "realism" in m else "ssim"


def plot_frame(items: list[SweepItem], selected: int | None = None, seeds: list[int] | None = None) -> pd.DataFrame:
    """One row per result. x = faithfulness (L2 to the guide); y = `y_metric`: alignment for text edits,
    realism for SDEdit, else SSIM (so the plot is still a faithfulness picture, and says so).

    Gradio's plot fixes its colour domain when it first draws, so every category it will ever show
    (each seed, and "selected") gets a placeholder row without coordinates, which draws nothing."""
    x = "L2 to guide (lower = more faithful)"
    labels = [f"seed {s}" for s in (seeds if seeds is not None else sorted({it.seed for it in items}))] + ["selected"]
    rows = [{x: None, "y": None, "result": label, "value": None, "index": -1} for label in labels]
    y = y_metric(items)
    for i, it in enumerate(items):
        rows.append({
            x: it.metrics["l2"],
            "y": it.metrics[y],
            "result": "selected" if i == selected else f"seed {it.seed}",
            "value": it.value,
            "index": i,
        })  # fmt: skip
    rows.sort(key=lambda r: r["result"] == "selected" and r["index"] >= 0)  # drawn last, so on top of a twin point
    # numbers even with no points yet (a sweep's first update): a column of Nones read as categories, and the
    # plot drew its axes as such
    return pd.DataFrame(rows).astype({x: float, "y": float, "value": float})


def padded_limits(values: list[float], share: float = 0.08) -> list[float] | None:
    """An axis range with a margin around the points: Gradio's plot ends its axis at the extreme
    values, so a point there was drawn cut in half against the frame."""
    if not values:
        return None
    lo, hi = min(values), max(values)
    pad = (hi - lo) * share or max(abs(hi) * share, 0.01)
    return [lo - pad, hi + pad]


def sweep_plot(items: list[SweepItem], seeds: list[int], selected: int | None = None) -> tuple[pd.DataFrame, str, dict[str, Any]]:
    """The realism-against-faithfulness plot of a sweep: its frame (`plot_frame`), its title, and its drawing
    settings (`plot_updates`): seed colours, the y axis's title and axes padded around the points."""
    df = plot_frame(items, selected, seeds=seeds)
    points = df[df["index"] >= 0]
    props = {"y_title": y_title(items), "color_map": colour_map(seeds), "x_lim": padded_limits(points.iloc[:, 0].tolist()),
             "y_lim": padded_limits(points["y"].tolist())}  # fmt: skip
    return df, plot_label(seeds, y_metric(items)), props


def plot_updates(session: Session, df: pd.DataFrame, label: str, props: dict[str, Any]) -> list[gr.ScatterPlot]:
    """The plot updates that draw `df` under `props` (from `sweep_plot`), one per yield, in order.

    Gradio's plot (6.31) draws itself anew when an axis, title or colour setting changes; given new data
    in the same update, that new drawing could show the data it held before (a sweep's last seed went
    missing from its plot). So new points go first, under the settings the plot has
    (`session.plot_props`, as last sent), and new settings after them, with the same points."""
    shown = session.plot_props or props
    session.plot_props = props
    points = gr.ScatterPlot(value=df, label=label, **shown)
    return [points] if shown == props else [points, gr.ScatterPlot(value=df, label=label, **props)]


def plot_label(seeds: list[int], y: str = "realism") -> str:
    """The plot's title with its colour key: Gradio draws the legend below the plot's frame, where it is cut off."""
    key = ", ".join(f"seed {s} {SEED_COLOUR_NAMES[i % len(SEED_COLOUR_NAMES)]}" for i, s in enumerate(seeds))
    what = {"alignment_gain": "Alignment gain", "realism": "Realism", "ssim": "SSIM"}[y]
    return f"{what} against faithfulness · {key}, orange = opened result"


SEED_COLOURS = ["#4263eb", "#12b886", "#ae3ec9", "#868e96"]
SEED_COLOUR_NAMES = ["blue", "green", "purple", "grey"]  # SEED_COLOURS' names, for the plot's key
MAX_VALUES, MAX_SEEDS = 8, len(SEED_COLOURS)  # a sweep's values and seeds (the Compare tab's sliders)


def colour_map(seeds: list[int]) -> dict[str, str]:
    """One colour per seed; the selected result stands out in orange."""
    return {"selected": "#f76707", **{f"seed {s}": SEED_COLOURS[k % len(SEED_COLOURS)] for k, s in enumerate(seeds)}}


def y_title(items: list[SweepItem]) -> str:
    if not items:  # a sweep's empty plot, before its first points say what they score
        return "score"
    return {"alignment_gain": "alignment to target − to source (encoder cosine)", "realism": "realism (encoder score)",
            "ssim": "SSIM (realism needs the emoji encoder)"}[y_metric(items)]  # fmt: skip


class Compare:
    def __init__(self, studio: Studio):
        self.studio = studio
        self.backend = studio.backend

    def _outputs(self, items: list[SweepItem], session: Session, status: str, seeds: list[int]) -> Iterator[Updates]:
        """A sweep's results so far; the plot's new axes, if its points need them, in an update of their own."""
        first, *after = plot_updates(session, *sweep_plot(items, seeds))
        yield {
            "gallery": [(it.image, it.label) for it in items],
            "plot": first,
            "table": [[it.value, it.seed, *(round(it.metrics[k], 3) if k in it.metrics else missing for k, missing in TABLE_SCORES)]
                      for it in items],  # fmt: skip
            "status": status,
            "session": session,
        }
        for up in after:
            yield {"plot": up}

    def sweep(
        self, *, canvas: dict | None, param: Param, n_values: int, n_seeds: int, prompt: str, source_prompt: str,
        target_prompt: str, t0: float, steps: int, skip: int, eta: float, guidance_scale: float, seed: int,
        edit_guidance_scale: float | None = None, session: Session | None = None,
    ) -> Iterator[Updates]:  # fmt: skip
        """Run `param` over n_values values x n_seeds seeds; results appear as they finish. `guidance_scale`
        is SDEdit's (t0 sweeps), `edit_guidance_scale` the text edit's target guidance (T_skip and η
        sweeps; None: the studio's default for the model)."""
        session = session if session is not None else Session()
        if param not in ("t0", "T_skip", "eta"):
            raise Refusal(f"param={param!r} is not one of: 't0', 'T_skip', 'eta'")
        for name, n, hi in (("n_values", n_values, MAX_VALUES), ("n_seeds", n_seeds, MAX_SEEDS)):
            if not (n == int(n) and 1 <= n <= hi):
                raise Refusal(f"{name}={n} is out of range; allowed: [1, {hi}]")
        if param != "t0":
            refuse(text_edit_missing(self.studio.info, f"A {SHOWN.get(param, param)} sweep"))
        # every setting is checked, whatever is swept: one out of range is refused, not passed over unread
        make_config(SDEditConfig, steps=steps, guidance_scale=guidance_scale, seed=seed)
        make_config(InversionConfig, steps=steps, eta=eta, seed=seed)
        edit_guidance = self._edit_guidance(edit_guidance_scale)
        make_config(EditConfig, skip=skip, guidance_scale=edit_guidance)
        if param != "T_skip":
            check_skip(skip, steps)
        edit_guidance = edit_guidance if param != "t0" else None  # a t0 sweep makes no text edit
        c = read_canvas(canvas)  # its notices (a picture run downscaled...) are the sweep's as they are a run's
        if param != "t0" and not target_prompt.strip():
            raise Refusal("Write a target prompt: a T_skip or η sweep edits the picture towards it.")
        guide = c.guide
        values = sweep_values(param, int(n_values), int(steps))
        seeds = [int(seed) + k for k in range(int(n_seeds))]
        total, items = len(values) * len(seeds), []
        session.sweep, session.selected = items, None
        # the last sweep's selection goes with it: its picture and files are not part of this sweep
        prompts = {"prompt": prompt} if param == "t0" else {"source_prompt": source_prompt, "target_prompt": target_prompt}
        notices = [*c.notices, *self.studio.prompt_notices(**prompts)]
        # the last sweep's points go too, on its axes (redrawn around this sweep's first points)
        df, _, props = sweep_plot([], seeds)
        (empty,) = plot_updates(session, df, f"Sweep over {SHOWN.get(param, param)}: the points appear as each seed finishes",
                                session.plot_props or props)  # fmt: skip
        yield {"gallery": gr.Gallery(value=[], selected_index=None), "selected_image": None, "selected_caption": "",
               "selected_files": None, "status": " ".join([f"Sweep over {SHOWN.get(param, param)}: {total} runs…", *notices]),
               "plot": empty, "notices": notices}  # fmt: skip  ("notices": for the API, which has no status line)
        batched = param == "t0" and hasattr(self.backend, "sdedit_batch")  # one batch per seed through the model
        # text edits in one batch per seed: a T_skip sweep's of one inversion, an eta sweep's of one inversion
        # per eta, those from one set of model calls
        edit_batched = hasattr(self.backend, "edit_batch") and (param == "T_skip" or (param == "eta" and hasattr(self.backend, "invert_etas")))

        def edit_configs(vs: list, s: int) -> tuple[list[InversionConfig], list[EditConfig]]:
            """The (inversion, edit) configs of a T_skip or eta sweep's values, for seed s."""
            return ([make_config(InversionConfig, steps=steps, eta=v if param == "eta" else eta, seed=s, preview_every=1) for v in vs],
                    [make_config(EditConfig, skip=v if param == "T_skip" else skip, guidance_scale=edit_guidance, preview_every=1)
                     for v in vs])  # fmt: skip

        for s in seeds:
            if edit_batched:
                inv_cfgs, cfgs = edit_configs(values, s)
                if param == "eta":
                    inv = yield from self._collect(guarded(self.backend.invert_etas, guide.image, source_prompt, inv_cfgs),
                                                   f"Sweep, seed {s}: inverting for {len(values)} η values at once")  # fmt: skip
                else:
                    yield from self.studio.ensure_inversion(guide.image, source_prompt, inv_cfgs[0], session, "predicted x0",
                                                            f"Sweep, seed {s}: inverting")  # fmt: skip
                    inv = session.inversion
                images = yield from self._collect(guarded(self.backend.edit_batch, inv, target_prompt, cfgs),
                                                  f"Sweep, seed {s}, {len(values)} {'η' if param == 'eta' else param} values in one batch")  # fmt: skip
                rows = [{"inversion": ic, "edit": c} for ic, c in zip(inv_cfgs, cfgs, strict=True)]
                runs = [self._edit_run(guide, ic, c, source_prompt, target_prompt, batch_record(rows, k, etas=param == "eta"))
                        for k, (ic, c) in enumerate(zip(inv_cfgs, cfgs, strict=True))]  # fmt: skip
                self._add(items, guide, param, values, s, images, runs)
                yield from self._outputs(items, session, f"{len(items)} of {total} done.", seeds)
                continue
            if batched:
                cfgs = [make_config(SDEditConfig, t0=v, steps=steps, guidance_scale=guidance_scale, seed=s, preview_every=1)
                        for v in values]  # fmt: skip
                images = yield from self._collect(guarded(self.backend.sdedit_batch, guide, cfgs, prompt), f"Sweep, seed {s}, {len(values)} t0 values in one batch")
                rows = [{"sdedit": cfg} for cfg in cfgs]
                runs = [self._sdedit_run(guide, cfg, prompt, batch_record(rows, k)) for k, cfg in enumerate(cfgs)]
                self._add(items, guide, param, values, s, images, runs)
                yield from self._outputs(items, session, f"{len(items)} of {total} done.", seeds)
                continue
            for v in values:
                label = f"Sweep {len(items) + 1}/{total}: {param}={v}, seed {s}"
                if param == "t0":
                    cfg = make_config(SDEditConfig, t0=v, steps=steps, guidance_scale=guidance_scale, seed=s, preview_every=1)
                    image = yield from self._collect(guarded(self.backend.sdedit, guide, cfg, prompt), label)
                    run = self._sdedit_run(guide, cfg, prompt)
                else:
                    (inv_cfg,), (cfg,) = edit_configs([v], s)
                    yield from self.studio.ensure_inversion(guide.image, source_prompt, inv_cfg, session, "predicted x0",
                                                            f"{label}: inverting")  # fmt: skip
                    image = yield from self._collect(guarded(self.backend.edit, session.inversion, target_prompt, cfg), label)
                    run = self._edit_run(guide, inv_cfg, cfg, source_prompt, target_prompt)
                self._add(items, guide, param, [v], s, [image], [run])
                yield from self._outputs(items, session, f"{len(items)} of {total} done.", seeds)
        yield {"progress": progress_html(total, total, f"Sweep over {SHOWN.get(param, param)}, done"),
               "status": f"Done: {total} results; click one to open it with its files."}

    def _edit_guidance(self, value: float | None) -> float:
        """A text edit's target guidance: the one given, else the studio's default for the model (its own
        measured value where it names one, the paper's 15 otherwise), never SDEdit's much lower one."""
        scale = float(value) if value is not None else studio_default(self.studio.info, EditConfig, "guidance_scale")
        try:
            EditConfig(guidance_scale=scale)
        except ValueError as e:  # named as the caller knows it: SDEdit's guidance_scale is another setting here
            raise Refusal(f"edit_guidance_scale (the text edit's target guidance): {e}") from e
        return scale

    @staticmethod
    def _sdedit_run(guide: Guide, cfg: SDEditConfig, prompt: str, batch: dict | None = None) -> RunRecord:
        """A t0 sweep's result as the command line's `sdedit`; made in a batch, its recipe records the
        batch (`batch_record`), which replay re-runs."""
        return RunRecord("sdedit", {"sdedit": cfg}, {"prompt": prompt}, {"guide": guide.image, "mask": guide.mask}, mode="sdedit-sweep",
                         batch=batch)  # fmt: skip

    @staticmethod
    def _edit_run(guide: Guide, inv_cfg: InversionConfig, cfg: EditConfig, source: str, target: str,
                  batch: dict | None = None) -> RunRecord:  # fmt: skip
        """A T_skip or eta sweep's result as the command line's `edit`; made in a batch, its recipe
        records the batch, which replay re-runs."""
        return RunRecord("edit", {"inversion": inv_cfg, "edit": cfg}, {"source": source, "target": target}, {"image": guide.image},
                         mode="edit-sweep", batch=batch)  # fmt: skip

    def _add(self, items: list[SweepItem], guide: Guide, param: str, values: list[float], seed: int, images: list[np.ndarray],
             runs: list[RunRecord]) -> None:  # fmt: skip
        """The results with their metrics; alignment is to the prompt the run drew towards (SDEdit's, or the edit's target)."""
        prompts = runs[0].prompts
        metrics = self.backend.metrics(guide.image, images, guide.mask, text=prompts.get("prompt", prompts.get("target", "")),
                                       source_text=prompts.get("source", ""))  # fmt: skip
        for v, image, m, run in zip(values, images, metrics, runs, strict=True):
            items.append(SweepItem(image, v, seed, m, caption(f"{SHOWN.get(param, param)}={v} seed {seed}", m), run))

    def _collect(self, frames: Iterator[Frame], label: str) -> Generator[Updates, None, Any]:
        """Run a method to its result, yielding progress at every frame (so Stop acts within a step)."""
        last = None
        for last in frames:
            stage = STAGES.get(last.stage, last.stage)
            yield {"progress": progress_html(last.step, last.total, f"{label}, {stage}" if last.stage in ("optimize", "finetune") else label)}
        if last is None or not last.done:
            raise Refusal(f"{label} stopped before producing a result.")
        return last.result

    def select_point(self, session: Session, evt: gr.SelectData) -> Updates:
        """A brushed x-range on the plot selects the result nearest its centre."""
        items = session.sweep
        if not items or not isinstance(evt.index, (list, tuple)) or len(evt.index) != 2:
            return {}
        lo, hi = sorted(float(x) for x in evt.index)
        centre = (lo + hi) / 2
        i = min(range(len(items)), key=lambda k: abs(items[k].metrics["l2"] - centre))
        return self._select(session, i)

    def select_image(self, session: Session, evt: gr.SelectData) -> Updates:
        """Clicking a result in the gallery highlights its point in the plot."""
        return self._select(session, int(evt.index))

    def select_cross(self, session: Session, evt: gr.SelectData) -> Updates:
        """Clicking a Compare-methods result gives its files (the input, first in the gallery, has none)."""
        i = int(evt.index) - 1
        if not 0 <= i < len(session.cross):
            return {"cross_files": None}
        return {"cross_files": self.files_of(session.cross[i])}

    def files_of(self, it: SweepItem) -> list[str] | None:
        """A result's files (PNG with the recipe, recipe JSON, inputs), as a run's; None where it has no record."""
        # Written when first wanted, and again if the studio's retention (Retention) has deleted them since.
        if it.run is not None and (it.files is None or not all(Path(f).is_file() for f in it.files)):
            it.files = save_run(self.studio.info, it.run, it.image)
        return it.files

    @staticmethod
    def selected_to_canvas(session: Session | None) -> tuple[dict, str]:
        """"Edit this result" under the opened sweep result: it becomes the canvas."""
        ok = session is not None and session.selected is not None and session.selected < len(session.sweep)
        return to_canvas(session.sweep[session.selected].image if ok else None,
                         "Open a result first: click one in the sweep's gallery or drag across points on the plot.",
                         "under Selected result in the Compare tab")  # fmt: skip

    def _select(self, session: Session, i: int) -> Updates:
        session.selected = i
        # new points only, on the plot's axes as they are (a result opened while the sweep runs: its points so far)
        it, (df, label, props) = session.sweep[i], sweep_plot(session.sweep, sorted({x.seed for x in session.sweep}), i)
        plot = gr.ScatterPlot(value=df, label=label, **(session.plot_props or props))
        return {"selected_image": it.image, "selected_caption": it.label, "plot": plot, "plot_df": df, "session": session, "index": i,
                "selected_files": self.files_of(it)}

    # ---------------------------------------------------------------- t0 by bisection

    def search(self, *, direction: Literal["faithful", "realistic"], canvas: dict | None, t0: float, session: Session | None,
               **sdedit_args: Any) -> Iterator[Updates]:  # fmt: skip
        """Halve [lo, hi] around the current t0 towards the side the user asked for, then run once."""
        session = session if session is not None else Session()
        key = image_key(read_canvas(canvas).guide.image)
        lo, hi = session.search if session.search_guide == key else (0.0, 1.0)  # a new drawing starts a new search
        if direction == "faithful":
            hi = min(hi, float(t0))
        else:
            lo = max(lo, float(t0))
        new_t0 = round(max(0.01, (lo + hi) / 2), 3)
        yield {"status": f"Trying t0 = {new_t0} (searching between {lo:.3f} and {hi:.3f})…"}
        # The slider and the search interval move only with a result: a stopped search leaves both as they were.
        for up in self.studio.sdedit(canvas=canvas, t0=new_t0, session=session, **sdedit_args):
            if "files" in up:
                session.search_guide, session.search = key, (lo, hi)
                up = {**up, "t0": new_t0, "status": f"t0 = {new_t0} (searching between {lo:.3f} and {hi:.3f}). {up['status']}"}
            yield up

    # ---------------------------------------------------------------- methods side by side

    def cross(
        self, *, canvas: dict | None, prompt: str, source_prompt: str, t0: float, steps: int, skip: int, guidance_scale: float,
        seed: int, edit_guidance_scale: float | None = None, session: Session | None = None, show: Show = "predicted x0",
        eta: float = InversionConfig.eta,
    ) -> Iterator[Updates]:  # fmt: skip
        """SDEdit, inversion + edit (with the inversion's eta) and (text-conditioned models) Imagic, at its
        fast preset, on the same input and seed."""
        session = session if session is not None else Session()
        c = read_canvas(canvas)
        if self.studio.info.conditional and not prompt.strip():  # before any run: Imagic would refuse it last
            raise Refusal("Write a prompt: SDEdit, the text edit and Imagic all take the picture towards it.")
        guide = Guide(image=c.guide.image)  # the whole picture for all three: inversion + edit and Imagic take no mask
        self.studio.prompt_notices(prompt=prompt, source_prompt=source_prompt)  # as toasts
        runs: list[tuple[str, np.ndarray, RunRecord]] = []
        session.cross = []
        yield {"status": "Running SDEdit…", "cross_files": None}
        cfg = make_config(SDEditConfig, t0=t0, steps=steps, guidance_scale=guidance_scale, seed=seed, preview_every=1)
        image = yield from self._collect(guarded(self.backend.sdedit, guide, cfg, prompt), "SDEdit")
        runs.append((f"SDEdit t0={cfg.t0}", image, RunRecord("sdedit", {"sdedit": cfg}, {"prompt": prompt}, {"guide": guide.image},
                                                              mode="sdedit-compare")))  # fmt: skip
        edit_missing = text_edit_missing(self.studio.info, "Inversion + edit")  # None: this model makes text edits
        if edit_missing is None:
            yield {"status": "Running inversion + edit…"}
            inv_cfg = make_config(InversionConfig, steps=steps, eta=eta, seed=seed, preview_every=1)
            ecfg = make_config(EditConfig, skip=min(int(skip), inv_cfg.steps - 1), guidance_scale=self._edit_guidance(edit_guidance_scale),
                               preview_every=1)  # fmt: skip
            yield from self.studio.ensure_inversion(guide.image, source_prompt, inv_cfg, session, show)
            edited = yield from self._collect(guarded(self.backend.edit, session.inversion, prompt, ecfg), "Inversion + edit")
            runs.append((f"Inversion + edit T_skip={ecfg.skip}", edited,
                         RunRecord("edit", {"inversion": inv_cfg, "edit": ecfg}, {"source": source_prompt, "target": prompt},
                                   {"image": guide.image}, mode="edit-compare")))  # fmt: skip
        if has_imagic(self.backend):
            yield {"status": "Running Imagic (its optimisation is cached by content)…"}
            icfg = make_config(ImagicConfig, **{**asdict(ImagicConfig.from_preset("fast", self.studio.info.family)), "seed": seed,
                                                "preview_every": 1})  # fmt: skip
            image = yield from self._collect(guarded(self.backend.imagic, guide.image, prompt, icfg), "Imagic")
            runs.append((f"Imagic η={icfg.eta}", image, RunRecord("imagic", {"imagic": icfg}, {"target": prompt}, {"image": guide.image},
                                                                  mode="imagic-compare")))  # fmt: skip
        metrics = self.backend.metrics(guide.image, [im for _, im, _ in runs], guide.mask, text=prompt)
        session.cross = [SweepItem(im, 0.0, seed, m, caption(name, m), run) for (name, im, run), m in zip(runs, metrics, strict=True)]
        gallery = [(guide.image, "input")] + [(it.image, it.label) for it in session.cross]
        imagic_missing = None if has_imagic(self.backend) else IMAGIC_MISSING
        ran = ["SDEdit", *(["inversion + edit"] if edit_missing is None else []), *(["Imagic"] if imagic_missing is None else [])]
        done = ", ".join(ran[:-1]) + f" and {ran[-1]}" if len(ran) > 1 else ran[0]
        note = "".join(" " + m for m in (edit_missing, imagic_missing) if m)
        yield {"cross_gallery": gallery, "progress": progress_html(1, 1, "Compare methods, done"),
               "status": f"Done: {done} on the same input with seed {seed}; click one for its files.{note}",
               "session": session}  # fmt: skip
