"""The Gradio page of ``mgdm serve``: a restore tab (with a compare mode) and a separate tab.

Every click goes through two steps:

1. *prepare* (answered at once, outside the queue): the page's values are checked and the upload
   is read (:mod:`mgdm.serve.work`); a refusal is a one-line message shown in the page, and
   nothing is queued. Otherwise a :class:`~mgdm.serve.jobs.Job` is registered for the session
   and the status says how many jobs are ahead of it;
2. *run* (queued, at most ``workers`` at a time): the job samples in a thread while the page
   polls it, showing the network calls so far and, for images, the current ``x0_hat`` of every
   sample; then the results are written into the session's folder and shown.

The cancel button sets the cancel flag of the session's jobs: a running job stops at its next
network call, a queued one when its turn comes; nothing of it is kept.

Files: everything the server writes lies under one temporary folder (:class:`Server`): the
Gradio upload and download cache in ``gradio/``, and one folder per browser session in
``sessions/``, removed when its page is closed; the whole folder is removed when the server
stops.
"""

import logging
import os
import shutil
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mgdm.checkpoints import one_line
from mgdm.devices import use_precision
from mgdm.priors.base import Denoiser
from mgdm.restore import Restoration
from mgdm.serve import work
from mgdm.serve.jobs import Job, JobCancelled, WorkerSlots

LOG = logging.getLogger("mgdm.serve")

QUICK = {"concurrency_limit": None, "concurrency_id": "quick", "show_progress": "hidden"}
"""Events answered at once: queued (so that a refusal shows as a message in the page) but
never limited, apart from the sampling jobs."""

POLL_SECONDS = 0.4
"""How often a running job's progress is sent to the page."""

CSS = """
#restore-samples-a img, #restore-samples-b img, #restore-estimate img {
    image-rendering: pixelated;
}
"""


@dataclass
class Session:
    """One browser session: its folder and its jobs (prepared or running), by tab."""

    folder: Path
    jobs: dict[str, Job[Any]] = field(default_factory=dict)
    requests: dict[str, Any] = field(default_factory=dict)


class Server:
    """What the sessions share: the priors, the device and the precision of the network calls
    (:func:`mgdm.devices.use_precision`; ``None``: fp32), the worker slots, the temporary
    folder (``root``; default: a new one); ``prior_name`` is how the page names the image prior."""

    def __init__(
        self,
        image_prior: Denoiser,
        audio_prior: Denoiser,
        device: torch.device,
        workers: int = 1,
        precision: str | None = None,
        root: Path | None = None,
        prior_name: str | None = None,
    ):
        self.image_prior = image_prior
        self.prior_name = prior_name or type(image_prior).__name__
        self.precision = precision
        self.audio_prior = audio_prior
        self.device = device
        self.slots = WorkerSlots(workers)
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="mgdm-serve-"))
        self.sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._in_flight: list[Job[Any]] = []

    def session(self, key: str) -> Session:
        """The session ``key`` (created with its folder on first use)."""
        with self._lock:
            if key not in self.sessions:
                folder = self.root / "sessions" / (key or "anonymous")
                folder.mkdir(parents=True, exist_ok=True)
                self.sessions[key] = Session(folder)
            return self.sessions[key]

    def close_session(self, key: str) -> None:
        """Cancel the session's jobs and remove its folder (the page was closed)."""
        with self._lock:
            session = self.sessions.pop(key, None)
        if session is not None:
            for job in session.jobs.values():
                job.cancel.set()
            shutil.rmtree(session.folder, ignore_errors=True)

    def enqueue(self, key: str, tab: str, request: Any) -> int:
        """Register a job of ``tab`` for session ``key``; returns the jobs ahead of it."""
        session = self.session(key)
        job: Job[Any] = Job()
        with self._lock:
            self._in_flight = [j for j in self._in_flight if not j.done]
            ahead = len(self._in_flight)
            self._in_flight.append(job)
        old = session.jobs.get(tab)
        if old is not None and not old.started:
            old.cancel.set()  # replaced by the new request before it ran
        session.jobs[tab] = job
        session.requests[tab] = request
        return ahead

    def cancel(self, key: str) -> int:
        """Set the cancel flag of the session's unfinished jobs; returns how many."""
        session = self.sessions.get(key)
        jobs = [] if session is None else [j for j in session.jobs.values() if not j.done]
        for job in jobs:
            job.cancel.set()
        return len(jobs)

    def run(
        self, key: str, tab: str, work_fn: Callable[[Any, Job[Any]], Any]
    ) -> tuple[Job[Any], Any] | None:
        """Start the session's prepared job of ``tab`` on ``work_fn(request, job)``; ``None``
        when there is none (already taken)."""
        session = self.session(key)
        request = session.requests.pop(tab, None)
        job = session.jobs.get(tab)
        if request is None or job is None:
            return None

        def in_precision() -> Any:  # a context variable: worker threads do not inherit it
            with use_precision(self.precision):
                return work_fn(request, job)

        job.start(in_precision, self.slots)
        return job, request

    def ahead_of(self, job: Job[Any]) -> int:
        """Unfinished jobs registered before ``job``."""
        with self._lock:
            index = self._in_flight.index(job) if job in self._in_flight else 0
            return sum(1 for j in self._in_flight[:index] if not j.done)

    def cleanup(self) -> None:
        """Cancel every job and remove the whole temporary folder."""
        for key in list(self.sessions):
            self.close_session(key)
        shutil.rmtree(self.root, ignore_errors=True)


def _message(error: BaseException) -> str:
    """The status line of a job that ended with ``error``."""
    if isinstance(error, JobCancelled):
        return "**Cancelled.** Nothing was kept."
    if isinstance(error, (ValueError, OSError)):
        return f"**Error:** {one_line(error)}"
    if isinstance(error, (MemoryError, RuntimeError)) and "memory" in str(error):
        return f"**Error:** out of memory ({one_line(error)[:160]}); ask for fewer samples."
    LOG.error("job failed:\n%s", "".join(traceback.format_exception(error)))
    return f"**Internal error:** {type(error).__name__}: {one_line(error)[:300]}"


def _notes(notes: Iterable[str]) -> str:
    """The notes of a job (e.g. how an upload was converted), one paragraph each."""
    return "".join(f"\n\nNote: {note}." for note in notes)


def _progress(server: Server, job: Job[Any], what: str) -> str:
    """The status line of a job still waiting or running."""
    if job.cancel.is_set():
        return "**Cancelling…**"
    if not job.started:
        ahead = server.ahead_of(job)
        return f"**Waiting for a worker:** {ahead} job(s) ahead of this one."
    text = f"**Running** {what}: {job.calls_per_sample:.0f} network calls per sample"
    if job.sampler_calls:
        text += f", {job.sampler_calls} batch(es) done"
    return text + f", {job.seconds:.1f} s."


def build_app(server: Server) -> Any:  # -> gradio.Blocks
    """The page (module docstring) serving ``server``'s priors."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ["GRADIO_TEMP_DIR"] = str(server.root / "gradio")
    import gradio as gr

    prior = server.image_prior
    domain = "latent" if prior.sample_space == "latent" else "image"
    tasks = work.image_tasks(prior)
    image_samplers = work.samplers_for(domain)
    audio_samplers = work.samplers_for("audio")

    def enqueue(request: gr.Request, tab: str, prepare: Callable[[], Any]) -> str:
        """Step 1 (module docstring): ``prepare()`` checks the values, a ``ValueError`` is shown
        as a refusal; otherwise the job is registered and the status says what is ahead."""
        try:
            prepared = prepare()
        except ValueError as error:
            raise gr.Error(one_line(error), duration=None, title="Refused") from None
        ahead = server.enqueue(request.session_hash, tab, prepared)
        return f"**Queued:** {ahead} job(s) ahead of this one.{_notes(prepared.notes)}"

    # ------------------------------------------------------------------ restore
    def prepare_restore(
        source: str,
        test_index: float | None,
        upload: str | None,
        task: str,
        sampler: str,
        compare: str | None,
        nfe: float | None,
        samples: float | None,
        sigma_y: float | None,
        seed: float | None,
        request: gr.Request,
    ) -> str:
        values = (source, test_index, upload, task, sampler, compare, nfe, samples, sigma_y, seed)
        return enqueue(request, "restore", lambda: work.prepare_restore(prior, *values))

    def run_restore(request: gr.Request) -> Iterator[tuple[Any, ...]]:
        session = server.session(request.session_hash)

        def sample(prepared: work.RestoreRequest, job: Job[Any]) -> list[Restoration]:
            return work.run_restore(prepared, prior, job, server.device)

        started = server.run(request.session_hash, "restore", sample)
        if started is None:
            return
        job, prepared = started
        notes = _notes(prepared.notes)
        names = [prepared.sampler.name] + ([prepared.compare] if prepared.compare else [])
        version = 0
        while not job.wait(POLL_SECONDS):
            estimate = gr.skip()
            if job.estimate is not None and job.estimate_version != version:
                version = job.estimate_version
                estimate = work.estimate_grid(job.estimate, job.estimate_prior or prior)
            what = " then ".join(names)
            yield (_progress(server, job, what) + notes, estimate, *([gr.skip()] * 5))
        if job.error is not None:
            yield (_message(job.error) + notes, *([gr.skip()] * 6))
            return
        folder = session.folder / f"restore-{id(job):x}"
        shown: list[Any] = []
        files: list[str] = []
        for name, result in zip(names, job.result):
            tiles, downloads = work.write_restoration(result, folder, name)
            shown += [gr.Gallery(value=tiles, label=name, visible=True)]
            shown += [work.scores_text(result)]
            files += [str(path) for path in downloads]
        if len(shown) == 2:
            shown += [gr.Gallery(value=None, visible=False), ""]
        last = (
            work.estimate_grid(job.estimate, job.estimate_prior or prior)
            if job.estimate is not None
            else None
        )
        done = f"**Done** in {job.seconds:.1f} s." + notes
        yield (done, last, *shown, files)

    # ------------------------------------------------------------------ separate
    def prepare_separate(
        source: str,
        song: float | None,
        upload: str | None,
        sampler: str,
        nfe: float | None,
        seed: float | None,
        request: gr.Request,
    ) -> str:
        values = (source, song, upload, sampler, nfe, seed)
        return enqueue(request, "separate", lambda: work.prepare_separation(*values))

    def run_separate(request: gr.Request) -> Iterator[tuple[Any, ...]]:
        session = server.session(request.session_hash)

        def separate(prepared: work.SeparateRequest, job: Job[Any]) -> Any:
            return work.run_separation(prepared, server.audio_prior, job, server.device)

        started = server.run(request.session_hash, "separate", separate)
        if started is None:
            return
        job, prepared = started
        players = 1 + len(stem_players)
        while not job.wait(POLL_SECONDS):
            yield (_progress(server, job, prepared.sampler.name), *([gr.skip()] * (players + 1)))
        if job.error is not None:
            yield (_message(job.error), *([gr.skip()] * (players + 1)))
            return
        separation = job.result
        written = work.write_separation(separation, session.folder / f"separate-{id(job):x}")
        notes = _notes((*prepared.notes, *separation.notes))
        seconds = separation.stems.shape[-1] / separation.sample_rate
        done = (
            f"**Done** in {job.seconds:.1f} s: {len(separation.names)} stems of {seconds:.2f} s "
            f"at {separation.sample_rate} Hz.{notes}"
        )
        audio = [str(written["mix"])] + [str(written[name]) for name in separation.names]
        stems = [str(written[name]) for name in separation.names]
        yield (done, *audio, stems)

    def cancel(request: gr.Request) -> Any:
        # While a job runs, the status line belongs to its generator, which shows "Cancelling…"
        # and then "Cancelled"; writing it here too would race that generator's last message.
        return gr.skip() if server.cancel(request.session_hash) else "Nothing to cancel."

    # ------------------------------------------------------------------ the controls both tabs have
    def nfe_box(tab: str) -> Any:
        return gr.Number(
            value=0,
            minimum=0,
            label="network calls per sample (0: the default)",
            elem_id=f"{tab}-nfe",
        )

    def seed_box(tab: str) -> Any:
        return gr.Number(value=0, precision=0, label="seed", elem_id=f"{tab}-seed")

    def buttons(label: str, tab: str) -> tuple[Any, Any]:
        """The tab's start and cancel buttons, side by side."""
        with gr.Row():
            start = gr.Button(label, variant="primary", elem_id=f"{tab}-button")
            stop = gr.Button("Cancel", variant="stop", elem_id=f"{tab}-cancel")
        return start, stop

    def connect(
        start: Any,
        stop: Any,
        upload: Any,
        source: Any,
        status: Any,
        prepare: Callable[..., str],
        inputs: list[Any],
        run: Callable[..., Iterator[tuple[Any, ...]]],
        outputs: list[Any],
    ) -> None:
        """A tab's events: ``prepare`` then, if it accepted, ``run`` in the sampling queue
        (module docstring); cancel; an upload selects the upload as the source."""
        start.click(prepare, inputs, status, **QUICK).success(
            run,
            None,
            outputs,
            concurrency_id="sampling",
            concurrency_limit=server.slots.workers,
        )
        stop.click(cancel, None, status, queue=False)
        upload.upload(lambda: work.UPLOAD, None, source, queue=False)

    with gr.Blocks(title="mgdm", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown(
            "## mgdm: posterior sampling with diffusion priors\n"
            f"Image prior: **{server.prior_name}** "
            f"({'x'.join(map(str, work.prior_image_shape(prior)))}), device {server.device}; "
            f"{server.slots.workers} job(s) at a time, the others wait in the queue."
        )
        with gr.Tab("Restore", id="restore"):
            with gr.Row():
                with gr.Column(scale=1):
                    source = gr.Radio(
                        [work.TEST_IMAGE, work.UPLOAD],
                        value=work.TEST_IMAGE,
                        label="image",
                        elem_id="restore-source",
                    )
                    test_index = gr.Number(
                        value=0,
                        precision=0,
                        minimum=0,
                        maximum=9999,
                        label="test image (0-9999)",
                        elem_id="restore-test-index",
                    )
                    upload = gr.File(
                        label="upload an image (PNG, JPEG, …)",
                        type="filepath",
                        elem_id="restore-upload",
                    )
                    task = gr.Dropdown(tasks, value=tasks[0], label="task")
                    sampler = gr.Dropdown(
                        image_samplers,
                        value=image_samplers[0],
                        label="sampler",
                        elem_id="restore-sampler",
                    )
                    compare = gr.Dropdown(
                        ["none", *image_samplers],
                        value="none",
                        label="compare with (same network calls per sample)",
                        elem_id="restore-compare",
                    )
                    nfe = nfe_box("restore")
                    samples = gr.Slider(
                        1,
                        work.MAX_SAMPLES,
                        value=4,
                        step=1,
                        label="samples",
                        elem_id="restore-samples",
                    )
                    sigma_y = gr.Number(value=0.05, minimum=0, label="sigma_y")
                    seed = seed_box("restore")
                    go, stop = buttons("Restore", "restore")
                with gr.Column(scale=2):
                    status = gr.Markdown(
                        "Choose an image and press Restore.", elem_id="restore-status"
                    )
                    estimate = gr.Image(
                        label="current estimate of x_0 (live)",
                        type="numpy",
                        format="png",
                        interactive=False,
                        elem_id="restore-estimate",
                    )
                    gallery_a = gr.Gallery(
                        label="samples",
                        columns=5,
                        height="auto",
                        object_fit="contain",
                        format="png",
                        elem_id="restore-samples-a",
                    )
                    scores_a = gr.Markdown(elem_id="restore-scores-a")
                    gallery_b = gr.Gallery(
                        label="compared",
                        columns=5,
                        height="auto",
                        object_fit="contain",
                        format="png",
                        visible=False,
                        elem_id="restore-samples-b",
                    )
                    scores_b = gr.Markdown(elem_id="restore-scores-b")
                    downloads = gr.File(
                        label="downloads: PNG grid and samples (.npy)",
                        file_count="multiple",
                        elem_id="restore-downloads",
                    )
            inputs = [
                source,
                test_index,
                upload,
                task,
                sampler,
                compare,
                nfe,
                samples,
                sigma_y,
                seed,
            ]
            outputs = [status, estimate, gallery_a, scores_a, gallery_b, scores_b, downloads]
            connect(go, stop, upload, source, status, prepare_restore, inputs, run_restore, outputs)
        with gr.Tab("Separate", id="separate"):
            with gr.Row():
                with gr.Column(scale=1):
                    mix_source = gr.Radio(
                        [work.GENERATED_MIX, work.UPLOAD],
                        value=work.GENERATED_MIX,
                        label="mix",
                        elem_id="separate-source",
                    )
                    song = gr.Number(value=0, precision=0, minimum=0, label="generated song number")
                    mix_upload = gr.File(
                        label="upload a mix (WAV, FLAC, OGG, AIFF)",
                        type="filepath",
                        elem_id="separate-upload",
                    )
                    audio_sampler = gr.Dropdown(
                        audio_samplers,
                        value=audio_samplers[0],
                        label="sampler",
                        elem_id="separate-sampler",
                    )
                    audio_nfe = nfe_box("separate")
                    audio_seed = seed_box("separate")
                    split, split_stop = buttons("Separate", "separate")
                with gr.Column(scale=2):
                    audio_status = gr.Markdown(
                        "Choose a mix and press Separate.", elem_id="separate-status"
                    )
                    mix_player = gr.Audio(
                        label="mix", type="filepath", interactive=False, elem_id="separate-mix"
                    )
                    names = tuple(server.audio_prior.stems)
                    stem_players = [
                        gr.Audio(
                            label=name,
                            type="filepath",
                            interactive=False,
                            elem_id=f"separate-{name}",
                        )
                        for name in names
                    ]
                    stem_files = gr.File(
                        label="downloads: stems (.wav)",
                        file_count="multiple",
                        elem_id="separate-downloads",
                    )
            connect(
                split,
                split_stop,
                mix_upload,
                mix_source,
                audio_status,
                prepare_separate,
                [mix_source, song, mix_upload, audio_sampler, audio_nfe, audio_seed],
                run_separate,
                [audio_status, mix_player, *stem_players, stem_files],
            )

        def close(request: gr.Request) -> None:
            server.close_session(request.session_hash)

        app.unload(close)
    app.queue(default_concurrency_limit=server.slots.workers)
    return app


def launch(app: Any, host: str, port: int, block: bool = True) -> Any:
    """Serve ``app`` on ``host:port`` (no share link, no analytics, no browser opened); with
    ``block``, until interrupted."""
    import gradio as gr

    return app.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        prevent_thread_lock=not block,
        show_error=True,
        quiet=True,
        ssr_mode=False,
        mcp_server=False,
        max_file_size="200mb",
        theme=gr.themes.Default(),
        css=CSS,
    )
