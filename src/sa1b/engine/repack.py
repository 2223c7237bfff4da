"""The repack body: a shard streamed into a bucket as a new tar (``--layout wds``, or
``--only json`` / ``jpg``: :mod:`sa1b.repack`), with no byte of it on the local disk.

It is the upload body (:class:`~sa1b.engine.upload.UploadBody`: the same part plan,
memory budget, uploaders, records, resume from ListParts, size check, completion) with
what fills a part changed, in two steps:

1. **The map.** A walk of the shard's headers by ranged requests (one header each, one
   at a time: :class:`MapAnswer` feeding :class:`~sa1b.tarwalk.TarWalk`), the members'
   names, data offsets, sizes and mtimes saved as it goes (:mod:`sa1b.store.repacks`),
   so that a killed walk goes on where it was. The walk judges the tar as extraction
   does: a damaged one fails the shard in one line, no upload begun.
2. **The fill.** From the map, the new tar's plan (:func:`sa1b.repack.plan_output`),
   cut into parts. A part's buffer takes its headers, padding and end blocks at once,
   and each stretch of a member's data in it by ranged requests (the tar's fill:
   :class:`~sa1b.engine.streamed.Filling`, a stretch cut into chunks, several at once);
   once every stretch is in, the part goes to the uploaders as a tar's part does. The
   plan is a function of the map, so a rerun keeps the parts the bucket holds, as for a
   tar.

Once complete, the new tar's catalog (known from the plan, no walk of the object) is put
at its catalog key, so that ``sa1b.open`` reads it in one GET.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sa1b.engine.bodies import Claim
from sa1b.engine.slots import BodyAnswer
from sa1b.engine.streamed import PartBuffer, judged_ranged
from sa1b.engine.tasks import Task
from sa1b.engine.upload import UploadBody
from sa1b.errors import (
    BadResponseError,
    ExtractionError,
    TransferError,
)
from sa1b.links import redact
from sa1b.net.heads import Head
from sa1b.objectstore.parts import PartPlan
from sa1b.repack import Copied, Mapped, Output, OutputPlan, plan_output
from sa1b.store.repacks import (
    MapForgotten,
    MapReached,
    MapRecord,
    MapStart,
    load_map,
    save_maps,
)
from sa1b.store.uploads import UploadRecord, WalkPoint
from sa1b.tarformat import BLOCK
from sa1b.tarwalk import Entry, Found, TarWalk, headers_only
from sa1b.versions import Validator


@dataclass(eq=False)
class RepackBody(UploadBody):
    """One shard repacked into one multipart upload; see the module's docstring."""

    output: Output = "wds"
    mapping: TarWalk | None = None
    """The walk of the source's headers (None before its first answer)."""
    mapped: list[Mapped] = field(default_factory=list)
    """The members the walk found, in tar order (with their headers' mtimes)."""
    map_saved: tuple[int, int] = (0, 0)
    mapper: MapAnswer | None = None
    """The map's request in flight (one at a time: each header says where the next is)."""
    out: OutputPlan | None = None

    # -- start-up ---------------------------------------------------------------

    def resume_map(self, task: Task, saved: MapRecord) -> None:
        """Go on with the map the store holds (of the source ``task`` names)."""
        task.size, task.validator = saved.size, saved.validator
        self.mapped = list(saved.members)
        entries = [Entry(m.name, m.offset, m.size) for m in saved.members]
        start = None if saved.complete else saved.next
        self.mapping = self._walk(task, saved.size, start=start, entries=entries)
        if self.mapping is not None:
            self.map_saved = self.mapping.resume_point

    def planned(self, task: Task) -> OutputPlan | None:
        """The new tar's plan, once the map is complete (None before, or with the
        shard's verdict set when the plan refuses a member)."""
        if self.mapping is None or not self.mapping.finished:
            return None
        if self.out is None:
            try:
                self.out = plan_output(self.mapped, self.output, shard=task.name)
            except ExtractionError as error:
                self.condemn(error)
        return self.out

    def _walk(
        self, task: Task, size: int, *, start: int | None = 0, entries: list[Entry] | None = None
    ) -> TarWalk | None:
        try:
            return TarWalk(
                task.name,
                size,
                headers_only,
                layout="wds",  # the new tar's headers hold its names: refused as locally
                start=start,
                entries=entries or (),
                on_member=self._found,
            )
        except ExtractionError as error:  # too short to hold a header
            self.condemn(error)
            return None

    def _found(self, found: Found) -> None:
        entry = found.entry
        self.mapped.append(Mapped(entry.name, entry.offset, entry.size, found.header.mtime))

    def _start(
        self,
        task: Task,
        plan: PartPlan,
        *,
        first: int | None = None,
        walked: WalkPoint | None = None,
    ) -> None:
        """The parts to fill: every one the bucket does not hold; none is read in order
        (the plan is the catalog, and the checksums file names the source's digest)."""
        self.hasher, self.walk, self.verdict = None, None, None
        self.next_read, self.reread = plan.count + 1, set()
        self.todo = [n for n in plan.numbers() if n not in self.uploaded]

    # -- what differs from a tar's upload -------------------------------------------

    def object_size(
        self, task: Task, saved: UploadRecord | None, recorded: int | None
    ) -> int | None:
        """The new tar's size, once the map the store holds is complete (the map is
        taken up here: the source's size and version are the map's)."""
        mapped = load_map(self.uploads.run.store, task.id)
        if mapped is not None:
            self.resume_map(task, mapped)
        out = self.planned(task)
        return out.size if out is not None else None

    def known_plan(
        self, task: Task, saved: UploadRecord | None, size: int | None, validator: Validator
    ) -> PartPlan | None:
        out = self.out
        if out is None:
            return None
        if saved is not None and saved.size == out.size:
            return PartPlan(saved.size, saved.part_size)
        return PartPlan.for_size(out.size, preferred=self.uploads.options.part_size)

    def begin(self, task: Task, plan: PartPlan | None) -> None:
        """No upload to continue: with the map complete, every part is to fill."""
        if plan is not None:
            self.plan = plan
            self._start(task, plan)

    def catalog(self, saved: UploadRecord | None) -> Sequence[Entry] | None:
        """The new tar's catalog: its plan's."""
        return self.out.entries if self.out is not None else None

    def finished(self, task: Task) -> None:
        """The object is complete: its map goes with its upload's records."""
        save_maps(self.uploads.run.store, [MapForgotten(task.id)])
        super().finished(task)

    # -- Body -------------------------------------------------------------------

    @property
    def claimable(self) -> bool:
        if self.verdict is not None:
            return False
        if self.plan is None:
            mapping = self.mapping
            return self.mapper is None and (mapping is None or not mapping.finished)
        return super().claimable

    @property
    def done_bytes(self) -> int:
        """The share of the new tar in the bucket, of the source's size (what the
        progress shows it against)."""
        plan, mapping = self.plan, self.mapping
        if plan is None or mapping is None or not plan.size:
            return 0
        return super().done_bytes * mapping.size // plan.size

    @property
    def complete(self) -> bool:
        return self.mapper is None and super().complete

    def claim(self, task: Task) -> Claim | None:
        if self.verdict is not None:
            return None
        if self.plan is not None:
            return super().claim(task)
        mapping = self.mapping
        if self.mapper is not None or (mapping is not None and mapping.finished):
            return None
        need = (0, BLOCK) if mapping is None else mapping.need()
        assert need is not None
        self.mapper = MapAnswer(task, self, *need)
        self.fetching += 1
        return self.mapper

    def stretches(self, number: int, buffer: PartBuffer) -> list[Copied]:
        """The stretches of members' data in part ``number``; its headers, padding and
        end blocks written into ``buffer`` at once."""
        plan, out = self.plan, self.out
        assert plan is not None and out is not None
        start, end = plan.span(number)
        stretches: list[Copied] = []
        for piece in out.fill(start, end):
            if isinstance(piece, Copied):
                stretches.append(piece)
            else:
                buffer[piece.at - start : piece.at - start + len(piece.data)] = piece.data
        return stretches

    # -- what its answers change (under the lock) ---------------------------------

    def start_over(self, task: Task) -> None:
        super().start_over(task)
        self.uploads.records.append(MapForgotten(task.id))
        self.mapping, self.mapped, self.mapper, self.out = None, [], None, None
        self.map_saved = (0, 0)

    def identify_map(self, task: Task, size: int, validator: Validator) -> None:
        """The source's size and version are known (the map's first answer)."""
        task.size, task.validator = size, validator
        self.uploads.records.append(MapStart(task.id, size, validator))
        self.mapping = self._walk(task, size)
        self.map_saved = (0, 0)

    def mapped_answer(self, task: Task, answer: MapAnswer) -> None:
        """The map's request is over: its progress queued to be saved; once the walk
        ended, the new tar planned and its parts to fill."""
        self.fetching -= 1
        self.received += answer.offset - answer.start
        if self.mapper is answer:
            self.mapper = None
        mapping = self.mapping
        if answer.generation != self.generation or mapping is None:
            return
        at, count = mapping.resume_point
        if (at, count) != self.map_saved:
            before = self.map_saved[1]
            self.uploads.records.append(MapReached(task.id, at, tuple(self.mapped[before:count])))
            self.map_saved = (at, count)
        if self.verdict is None and self.plan is None and (out := self.planned(task)):
            self.plan = PartPlan.for_size(out.size, preferred=self.uploads.options.part_size)
            self._start(task, self.plan)


class MapAnswer(BodyAnswer):
    """A step of the map's walk (one header, bytes ``[start, stop)`` of the source) and
    the receiver of its answer: the bytes go to the walk, which says where the next
    header is, or that the tar is damaged."""

    shard: RepackBody
    again = "mapping"

    def __init__(self, task: Task, body: RepackBody, start: int, stop: int) -> None:
        super().__init__(task, body, start, stop)
        self.uploads, self.offset = body.uploads, start

    def head(self, head: Head) -> bool:
        task, body = self.task, self.shard
        with self.uploads.run.lock:
            judged = judged_ranged(self, head)
            if judged is None:
                return self.refusal is not None
            if body.mapping is None and body.verdict is None:
                body.identify_map(task, judged.total, judged.validator)
            return body.mapping is not None

    def body(self, data: bytes) -> bool:
        if self.refusal is not None:
            return self.refusal.add(data)
        with self.uploads.run.lock:
            mapping = self.shard.mapping
            if not self.current or mapping is None:
                return False
            try:
                mapping.feed(self.offset, data)
            except ExtractionError as error:
                self.shard.condemn(error)
                return False
            except ValueError as error:
                self.error = BadResponseError(
                    f"an answer out of step with the walk: {error}",
                    name=self.task.name,
                    url=redact(self.task.link.url),
                )
                return False
            self.offset += len(data)
            return not mapping.finished

    def end(self, error: TransferError | None) -> None:
        task, body = self.task, self.shard
        failure = self.failure(error)
        with self.uploads.run.lock:
            stale = self.generation != body.generation
            if failure is None and not stale and body.verdict is None and self.offset == self.start:
                failure = BadResponseError("an answer without a byte", name=task.name)
            body.mapped_answer(task, self)
        self.ended(None if stale else failure)
