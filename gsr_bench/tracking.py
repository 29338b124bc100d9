"""MLflow tracking: an embedded SQLite store under the results folder, or a tracking server.

Only the driver process writes to MLflow: workers return results, the driver logs them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from gsr_bench.errors import TrackingError

EXPERIMENT = "gsr-bench"
JOB_KEY_TAG = "job_key"


def resolve_tracking_uri(results_dir: Path, uri: str | None = None) -> str:
    """``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else SQLite in the results folder."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{(results_dir / 'mlflow.db').resolve()}"


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = json.dumps(value) if isinstance(value, list | tuple) else str(value)
    return out


class Tracker:
    """A thin layer over ``MlflowClient`` for gsr-bench runs."""

    def __init__(self, results_dir: Path, uri: str | None = None) -> None:
        self.results_dir = Path(results_dir)
        self.uri = resolve_tracking_uri(self.results_dir, uri)
        local = self.uri.startswith("sqlite:") or self.uri.startswith("file:") or "://" not in self.uri
        if local:
            self.results_dir.mkdir(parents=True, exist_ok=True)
        else:  # a server that is down should fail in seconds with one clear line, not retry for minutes
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        import logging

        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        logging.getLogger("alembic").setLevel(logging.WARNING)
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        from mlflow.tracking import MlflowClient

        try:
            self.client = MlflowClient(tracking_uri=self.uri)
            exp = self.client.get_experiment_by_name(EXPERIMENT)
            if exp is None:
                artifacts = (self.results_dir / "artifacts").resolve().as_uri() if local else None
                self.experiment_id = self.client.create_experiment(EXPERIMENT, artifact_location=artifacts)
            else:
                self.experiment_id = exp.experiment_id
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TrackingError(
                f"tracking URI {self.uri} cannot be used ({first[:300]}); start the server, fix "
                f"--tracking-uri / MLFLOW_TRACKING_URI, or unset it to use {self.results_dir}/mlflow.db"
            ) from None

    def finished_run(self, key: str, tag: str = JOB_KEY_TAG) -> Any | None:
        """The newest finished run whose ``tag`` is ``key``."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.{tag} = '{key}' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return runs[0] if runs else None

    def start(self, name: str, tags: Mapping[str, str]) -> str:
        """A new run, or the job's interrupted one: a restart after a kill adds no duplicate."""
        for run in self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.{JOB_KEY_TAG} = '{tags[JOB_KEY_TAG]}'"
        ):
            if run.info.status in ("RUNNING", "KILLED", "SCHEDULED"):
                self.client.update_run(run.info.run_id, status="RUNNING")
                for key, value in tags.items():
                    self.client.set_tag(run.info.run_id, key, value)
                return str(run.info.run_id)
        run = self.client.create_run(self.experiment_id, tags=dict(tags), run_name=name)
        return str(run.info.run_id)

    def log(
        self,
        run_id: str,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
    ) -> None:
        from mlflow.entities import Metric, Param, RunTag

        now = int(__import__("time").time() * 1000)
        p = [Param(k, str(v)[:6000]) for k, v in params.items()]
        m = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
        t = [RunTag(k, str(v)[:5000]) for k, v in tags.items()]
        for i in range(0, max(len(p), len(m), len(t)), 100):  # MLflow caps a batch at 100 params
            self.client.log_batch(run_id, metrics=m[i : i + 100], params=p[i : i + 100], tags=t[i : i + 100])

    def log_series(self, run_id: str, series: Sequence[tuple[str, int, float]]) -> None:
        """Metric series with their step (the training loss, the validation RMSE), for the
        MLflow UI's charts."""
        from mlflow.entities import Metric

        now = int(__import__("time").time() * 1000)
        m = [Metric(name, float(value), now, int(step)) for name, step, value in series]
        for i in range(0, len(m), 1000):  # MLflow caps a batch at 1000 metrics
            self.client.log_batch(run_id, metrics=m[i : i + 1000])

    def log_artifact(self, run_id: str, path: Path) -> None:
        self.client.log_artifact(run_id, str(path))

    def end(self, run_id: str, status: str) -> None:
        self.client.set_terminated(run_id, status)

    def runs(self, status: str = "FINISHED") -> Iterator[Any]:
        token = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id],
                filter_string=f"attributes.status = '{status}'",
                max_results=1000,
                page_token=token,
            )
            yield from page
            token = page.token
            if not token:
                break

    def download(self, run_id: str, name: str, dst: Path) -> Path | None:
        try:
            return Path(self.client.download_artifacts(run_id, name, str(dst)))
        except Exception:
            return None
