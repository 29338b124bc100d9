"""The result record's schema as typed models: what ``leaderboard --check`` validates each record
with, and the source of the JSON Schema committed as ``gsr_bench/schemas/result-record.json``
(``python -m gsr_bench.record_schema`` writes it; a test keeps it current).

Fields a record may carry beyond these are allowed (a newer gsr-bench of the same schema
version adds them); fields these name must be there with their type.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, ValidationError

SCHEMA = "gsr-bench/result"
SCHEMA_VERSION = 2  # 2: code fingerprint, distribution version and install, sections by identity
SCHEMA_FILE = Path(__file__).resolve().parent / "schemas" / "result-record.json"

Number = Annotated[StrictFloat | StrictInt, Field(description="a finite or NaN number")]


class _Part(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


class MethodPart(_Part):
    name: str
    version: str
    family: str
    distribution: str = Field(description="the distribution that registered it (gsr-bench: built in)")
    distribution_version: str
    code: str = Field(description="the code fingerprint of its factory's module and imports")
    install: dict[str, Any] = Field(description="url and requirement: how to install that code")
    description: str = ""
    paper: str = ""
    plugin: str = ""


class DatasetPart(_Part):
    name: str
    version: str
    units: str
    label: str
    options: dict[str, Any] = Field(description="the options that change the data; never a path")
    revision: str = ""
    content_revision: str = ""
    source_name: str = "source"
    guide: str = ""
    variant: dict[str, Any] = {}


class TestPart(_Part):
    dataset: str
    split: str
    revision: str = ""
    content_revision: str = ""
    options: dict[str, Any] = {}


class ProtocolPart(_Part):
    name: str
    version: str
    variant: dict[str, Any] = {}


class Provenance(_Part):
    git_hash: str
    packages: dict[str, Any]
    device: str
    created_at: str
    mlflow_run_id: str = ""


class ResultRecord(_Part):
    """One finished job: what it ran (its resolved configuration, hashed into its key), with
    which code, on what data, and its metrics in the dataset's units."""

    record_schema: Literal["gsr-bench/result"] = Field(alias="schema")
    schema_version: Literal[2]
    job_key: str = Field(description="the first 16 hex digits of config_hash")
    config_hash: str = Field(description="SHA-256 of the canonical JSON of config")
    cell_key: str = ""
    seed: StrictInt
    config: dict[str, Any]
    method: MethodPart
    dataset: DatasetPart
    test: TestPart
    protocol: ProtocolPart
    provenance: Provenance
    metrics: dict[str, Number] = Field(description="metric name -> value; rmse among them")
    metrics_revision: StrictInt = 1
    metric_info: dict[str, Any] | None = None


def problems(record: Any) -> list[str]:
    """What is missing or of the wrong type in ``record``, one line per field."""
    try:
        ResultRecord.model_validate(record)
    except ValidationError as exc:
        return [f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg'].lower()}" for e in exc.errors()]
    return []


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a result record (draft 2020-12), as committed."""
    schema = ResultRecord.model_json_schema(by_alias=True)
    schema["$id"] = f"urn:gsr-bench:result:{SCHEMA_VERSION}"
    schema["title"] = f"gsr-bench result record, schema version {SCHEMA_VERSION}"
    return schema


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    SCHEMA_FILE.parent.mkdir(exist_ok=True)
    SCHEMA_FILE.write_text(schema_text())
    print(f"wrote {SCHEMA_FILE.name}", file=sys.stderr)
