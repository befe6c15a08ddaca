"""A small client of Flink's REST API (the JobManager's web endpoint): jobs, checkpoints, savepoints."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from uxstream.errors import UserError

RUNNING_STATES = ("INITIALIZING", "CREATED", "RUNNING", "RESTARTING", "FAILING", "CANCELLING", "RECONCILING")


class ClusterNotUp(UserError):
    """No Flink REST endpoint answers."""


@dataclass(frozen=True)
class Job:
    id: str
    name: str
    state: str

    @property
    def active(self) -> bool:
        return self.state in RUNNING_STATES


class FlinkRest:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def not_up_message(self) -> str:
        return (
            f"no Flink cluster answers at {self.url}: start the local one with `make cluster-up` "
            "(or point UXSTREAM_FLINK_REST_URL at yours)"
        )

    def call(self, path: str, body: dict[str, Any] | None = None, method: str | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=data,
            method=method or ("POST" if body is not None else "GET"),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:2000]
            raise UserError(f"Flink REST {path} failed with HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            raise ClusterNotUp(self.not_up_message()) from None
        return json.loads(raw) if raw else None

    def is_up(self) -> bool:
        try:
            self.call("/overview")
        except UserError:  # not listening, or 503 while the JobManager elects its leader
            return False
        return True

    def overview(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("/overview")
        return result

    def taskmanagers(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.call("/taskmanagers")["taskmanagers"]
        return result

    def jobs(self) -> list[Job]:
        overview = self.call("/jobs/overview")["jobs"]
        return [Job(j["jid"], j["name"], j["state"]) for j in overview]

    def active_job(self, name: str) -> Job | None:
        """The running (or restarting) job called `name`, if any."""
        active = [j for j in self.jobs() if j.name == name and j.active]
        if len(active) > 1:
            raise UserError(
                f"{len(active)} jobs named {name!r} run on {self.url} ({', '.join(j.id for j in active)}): "
                "cancel the extra ones in the web UI first"
            )
        return active[0] if active else None

    def job(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call(f"/jobs/{job_id}")
        return result

    def job_state(self, job_id: str) -> str:
        return str(self.job(job_id)["state"])

    def checkpoints(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call(f"/jobs/{job_id}/checkpoints")
        return result

    def completed_checkpoints(self, job_id: str) -> int:
        return int(self.checkpoints(job_id)["counts"]["completed"])

    def _await_savepoint(self, job_id: str, trigger: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self.call(f"/jobs/{job_id}/savepoints/{trigger}")
            if status["status"]["id"] == "COMPLETED":
                operation = status.get("operation") or {}
                if "failure-cause" in operation:
                    cause = operation["failure-cause"].get("stack-trace", "")[:3000]
                    raise UserError(f"the savepoint of job {job_id} failed: {cause}")
                return str(operation["location"])
            time.sleep(0.5)
        raise UserError(f"the savepoint of job {job_id} did not complete within {timeout_s:.0f} s")

    def savepoint(self, job_id: str, target: str, timeout_s: float = 300.0) -> str:
        """Trigger a savepoint (the job keeps running); return its location."""
        trigger = self.call(
            f"/jobs/{job_id}/savepoints",
            {"target-directory": target, "cancel-job": False, "formatType": "CANONICAL"},
        )["request-id"]
        return self._await_savepoint(job_id, trigger, timeout_s)

    def stop_with_savepoint(
        self, job_id: str, target: str, drain: bool = False, timeout_s: float = 300.0
    ) -> str:
        """Stop the job with a savepoint (`drain` fires every timer and window first); return its location."""
        trigger = self.call(
            f"/jobs/{job_id}/stop",
            {"targetDirectory": target, "drain": drain, "formatType": "CANONICAL"},
        )["request-id"]
        return self._await_savepoint(job_id, trigger, timeout_s)

    def wait_for_state(self, job_id: str, states: tuple[str, ...], timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        state = self.job_state(job_id)
        while state not in states and time.monotonic() < deadline:
            time.sleep(0.5)
            state = self.job_state(job_id)
        if state not in states:
            raise UserError(f"job {job_id} is {state}, not {' or '.join(states)}, after {timeout_s:.0f} s")
        return state
