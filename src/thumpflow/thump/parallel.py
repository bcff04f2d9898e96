"""A job's CSV data files read, validated, keyed and hashed in worker processes.

`ParallelCsvReader` is the `DataFileReader` of a job with `read_processes`:
it cuts a file into parts (`thumpflow.batch.parts`), has each part counted
(for the manifest check) or read and prepared in a process of an executor,
and hands back the results in file order. A part's results are used only
after the part before it reported where it stopped; when that is not where
the part was cut (a record spanning the cut), the part is discarded and read
again from the true boundary, so the records, origins, counts and rejects
are exactly those of a reading in the engine.

In a worker each row goes through the job's validator as read
(`RecordValidator.row_preparer`: the typed record, its canonical JSON and
values at once), then its business key and SHA-256; what travels back per
valid record is its canonical JSON, values, key, hash, origin and version,
pickled without the pickler's memo. Every record the validator does not
answer (unreadable, invalid, or one it leaves to the detailed path) comes
back as read, and the run validates it as it always does, so its reject
names every failure.

A prepared record's `BatchItem` carries its typed record lazily
(`TypedFields`: its field names are known at once, its typed values are
decoded from `BatchItem.values` the first time one is asked for) and no
`source`: a record a destination refuses is kept as its canonical JSON,
which is valid input giving the same typed record on replay. Destinations
that read typed values (CSV, HL7 v2 batch, FHIR, PostgreSQL) decode them
from the values per record.

A worker that fails (an OS error, a process that died) fails the count or
the read, and so the run, as any failure of its source would: during the
count nothing of the file has been imported; during the read the
destinations abort and the file is set aside, and a re-run converges as
after any run that failed midway.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from hashlib import sha256
from pathlib import Path
from typing import Any, TypeVar

from thumpflow.batch.csv_format import CsvOptions
from thumpflow.batch.parts import CsvPart, CsvPlan, count_part, moved, plan_csv, read_part_rows
from thumpflow.batch.reading import UnreadableRecord
from thumpflow.config.jobs import FieldSpec, Job, RuleSpec
from thumpflow.core.batch import BatchItem, PreparedRecord, SourceRecord
from thumpflow.core.records import business_key, version_number
from thumpflow.thump.validate import RecordValidator

_Result = TypeVar("_Result")

PART_BYTES = 1 << 20
"""About how much of a file one task of a worker reads (some 4,000 to 10,000 rows)."""


@dataclass(slots=True, frozen=True)
class Recipe:
    """What a worker needs to prepare a job's records (picklable, sent with each task)."""

    job_id: str
    fields: tuple[str, ...]
    rules: tuple[str, ...]
    unknown_fields: str
    business_key: tuple[str, ...]
    version_field: str | None

    @classmethod
    def of(cls, job: Job) -> Recipe:
        return cls(
            job.id,
            tuple(spec.model_dump_json() for spec in job.schema_),
            tuple(rule.model_dump_json() for rule in job.rules),
            job.unknown_fields,
            tuple(job.business_key),
            job.version_field,
        )

    def validator(self) -> RecordValidator:
        return RecordValidator(
            [FieldSpec.model_validate_json(text) for text in self.fields],
            [RuleSpec.model_validate_json(text) for text in self.rules],
            unknown_fields=self.unknown_fields,
            required=self.business_key,
        )


@dataclass(slots=True)
class PreparedPart:
    """A part's records as they travel back: the valid ones as columns, the others whole,
    each with its position in the part."""

    canonical: list[bytes] = field(default_factory=list)
    values: list[tuple[Any, ...]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)
    versions: list[int | None] = field(default_factory=list)
    others: list[tuple[int, SourceRecord]] = field(default_factory=list)


_VALIDATORS: dict[Recipe, RecordValidator] = {}
"""The validators made in this (worker) process, by recipe."""


def prepare_part(
    recipe: Recipe, path: Path, name: str, plan: CsvPlan, part: CsvPart
) -> tuple[bytes, int | None]:
    """In a worker: one part's records prepared (a pickled `PreparedPart`), and the line the
    next record starts on.

    The part is pickled here without the pickler's memo (a part holds no
    object twice and no cycle), which costs a third of pickling it with one.
    """
    validator = _VALIDATORS.get(recipe)
    if validator is None:
        validator = _VALIDATORS[recipe] = recipe.validator()
    header = plan.header
    prepare = validator.row_preparer(header)
    keys, version_field = recipe.business_key, recipe.version_field
    out = PreparedPart()
    canonical, hashes, origins, others = out.canonical, out.hashes, out.origins, out.others
    item_keys, versions, values = out.keys, out.versions, out.values
    rows, stop = read_part_rows(path, name, plan, part)
    for position, entry in enumerate(rows):
        if isinstance(entry, UnreadableRecord):
            others.append((position, entry))
            continue
        row, line = entry
        prepared = prepare(row)
        if prepared is None:
            record = SourceRecord(dict(zip(header, row, strict=True)), f"{name}:line {line}")
            others.append((position, record))
            continue
        typed, text, typed_values = prepared
        canonical.append(text)
        values.append(typed_values)
        hashes.append(sha256(text).hexdigest())
        item_keys.append(business_key(typed, keys))
        origins.append(f"{name}:line {line}")
        if version_field is not None:
            versions.append(version_number(typed.get(version_field)))
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.fast = True
    pickler.dump(out)
    return buffer.getvalue(), stop.line


class TypedFields(Mapping[str, Any]):
    """A prepared record's typed fields, decoded from its values (`BatchItem.values`) when
    first read.

    The names (the job's declared fields, in order) are known without
    decoding, so asking which fields there are costs nothing.
    """

    __slots__ = ("_shape", "_typed", "_values")

    def __init__(self, values: tuple[Any, ...], shape: _Shape) -> None:
        self._values = values
        self._shape = shape
        self._typed: dict[str, Any] | None = None

    def _fields(self) -> dict[str, Any]:
        typed = self._typed
        if typed is None:
            typed = self._typed = self._shape.typed(self._values)
        return typed

    def __getitem__(self, name: str) -> Any:
        return self._fields()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._shape.names)

    def __len__(self) -> int:
        return len(self._shape.names)

    def __contains__(self, name: object) -> bool:
        return name in self._shape.known


_DECODE: dict[str, Callable[[Any], Any]] = {
    "date": date.fromisoformat,
    "datetime": datetime.fromisoformat,
    "decimal": Decimal,
}


class _Shape:
    """A job's declared fields: their names, and their typed values from JSON's."""

    def __init__(self, fields: list[FieldSpec]) -> None:
        self.names = tuple(spec.name for spec in fields)
        self.known = frozenset(self.names)
        self._decode = [(spec.name, _DECODE.get(spec.type)) for spec in fields]

    def typed(self, values: tuple[Any, ...]) -> dict[str, Any]:
        return {
            name: value if decode is None or value is None else decode(value)
            for (name, decode), value in zip(self._decode, values, strict=True)
        }


class ParallelCsvReader:
    """A `DataFileReader` for one run of a job (see the module docstring).

    `executor` runs the tasks (a process pool of `processes` workers); up to
    twice that many parts are in flight. Files that `plan_csv` cannot cut
    are left to the usual reading.
    """

    def __init__(
        self,
        executor: Executor,
        job: Job,
        options: CsvOptions,
        *,
        processes: int,
        part_bytes: int = PART_BYTES,
    ) -> None:
        self._executor = executor
        self._recipe = Recipe.of(job)
        self._shape = _Shape(job.schema_)
        self._options = options
        self._ahead = 2 * processes
        self._part_bytes = part_bytes
        self._plans: dict[Path, CsvPlan | None] = {}
        """Plans made by `count`, checked part by part (None: the file cannot be cut), for
        `records` to use instead of planning the file again."""

    def count(self, path: Path) -> int | None:
        plan = self._plans[path] = plan_csv(path, self._options, self._part_bytes)
        if plan is None:
            return None
        total = 0
        for checked, (count, _line) in self._in_order(path, plan, self._submit_count):
            total += count
            self._plans[path] = checked
        return total

    def records(self, path: Path, name: str) -> Iterator[SourceRecord] | None:
        if path in self._plans:
            plan = self._plans.pop(path)
        else:
            plan = plan_csv(path, self._options, self._part_bytes)
        if plan is None:
            return None
        return self._records(path, name, plan)

    def _submit_count(
        self, path: Path, plan: CsvPlan, part: CsvPart
    ) -> Future[tuple[int, int | None]]:
        return self._executor.submit(count_part, path, plan, part)

    def _records(self, path: Path, name: str, plan: CsvPlan) -> Iterator[SourceRecord]:
        shape = self._shape

        def submit(path: Path, plan: CsvPlan, part: CsvPart) -> Future[tuple[bytes, int | None]]:
            return self._executor.submit(prepare_part, self._recipe, path, name, plan, part)

        for _plan, (pickled, _line) in self._in_order(path, plan, submit):
            prepared: PreparedPart = pickle.loads(pickled)
            yield from _merged(prepared, shape)

    def _in_order(
        self,
        path: Path,
        plan: CsvPlan,
        submit: Callable[[Path, CsvPlan, CsvPart], Future[tuple[_Result, int | None]]],
    ) -> Iterator[tuple[CsvPlan, tuple[_Result, int | None]]]:
        """Each part's result in order, with the plan as corrected so far; tasks run ahead."""
        pending: dict[int, Future[tuple[_Result, int | None]]] = {}
        index = 0
        try:
            while index < len(plan.parts):
                for ahead in range(index, min(index + self._ahead, len(plan.parts))):
                    if ahead not in pending:
                        pending[ahead] = submit(path, plan, plan.parts[ahead])
                result = pending.pop(index).result()
                line = result[1]
                if line != plan.parts[index].stop_line:
                    for future in pending.values():
                        future.cancel()
                    pending.clear()
                    plan = moved(path, plan, index, line)
                yield plan, result
                index += 1
        finally:
            for future in pending.values():
                future.cancel()


def _merged(prepared: PreparedPart, shape: _Shape) -> Iterator[SourceRecord]:
    """A part's records in order: the valid ones made `PreparedRecord`s."""
    others = prepared.others
    versions = prepared.versions or None
    at = others[0][0] if others else -1
    taken = 0
    position = 0
    values = prepared.values
    for n, text in enumerate(prepared.canonical):
        while position == at:
            yield others[taken][1]
            taken += 1
            position += 1
            at = others[taken][0] if taken < len(others) else -1
        row = values[n]
        data = TypedFields(row, shape)
        origin = prepared.origins[n]
        item = BatchItem(
            prepared.keys[n],
            data,
            prepared.hashes[n],
            origin,
            None,
            versions[n] if versions is not None else None,
            text,
            row,
        )
        yield PreparedRecord(data, origin, item=item)
        position += 1
    for _, record in others[taken:]:
        yield record
