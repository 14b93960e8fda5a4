"""Apply one architecture definition to a checkpoint's tensor names -> RoleMap."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from functools import lru_cache

from provenance.arch.definition import Definition, Entry
from provenance.arch.layout import Layout
from provenance.arch.rolemap import Cut, RoleMap, RoleSource
from provenance.arch.roles import expert_role, layer_role
from provenance.io.base import TensorInfo, is_buffer


@lru_cache(maxsize=4096)
def _pattern(template: str) -> re.Pattern[str]:
    """Template -> regex with (?P<i>) and (?P<e>) groups."""
    escaped = re.escape(template).replace(r"\$\{i\}", r"(?P<i>\d+)").replace(r"\$\{e\}", r"(?P<e>\d+)")
    return re.compile(f"^(?P<prefix>.*?){escaped}$")


def _matches(template: str, names: Iterable[str]) -> Iterator[re.Match[str]]:
    """The matches of `template` among `names`. A match ends with the template's text after its last
    placeholder, so names without that ending are skipped before the regex (ONNX graphs: ~20 definitions
    tried against every name)."""
    pat, tail = _pattern(template), template.rsplit("}", 1)[-1]
    for name in names:
        if name.endswith(tail) and (m := pat.match(name)):
            yield m


def detect_prefix(defn: Definition, names: set[str]) -> str:
    """The wrapper prefix ('bert.', 'base_model.model.', 'inner.') most templates need."""
    votes: Counter[str] = Counter()
    for entry in defn.all_entries():
        for m in _matches(entry.name, names):
            votes[m.group("prefix")] += 1
    if not votes:
        return ""
    return votes.most_common(1)[0][0]


def _headless_alias(defn: Definition, weights: set[str]) -> dict[str, str]:
    """Name -> itself; but for a headless save (`LlamaModel`: 'layers.0...' where the templates say
    'model.layers.0...') also expose each name under the templates' shared first component."""
    alias = {n: n for n in weights}
    firsts = {e.name.split(".", 1)[0] for e in defn.layer if "." in e.name}
    if len(firsts) != 1 or not defn.layer:
        return alias
    wrapper = firsts.pop() + "."
    probe = defn.layer[0].name
    if any(_matches(probe, weights)) or not any(_matches(probe, (wrapper + n for n in weights))):
        return alias
    alias.update({wrapper + n: n for n in weights if wrapper + n not in alias})
    return alias


class _Mapper:
    """State of one definition being applied; `run` returns the RoleMap."""

    def __init__(self, defn: Definition, infos: dict[str, TensorInfo], layout: Layout, tie: bool) -> None:
        self.defn, self.infos, self.layout, self.tie = defn, infos, layout, tie
        self.weights = {n for n, i in infos.items() if not is_buffer(i)}
        self.alias = _headless_alias(defn, self.weights)  # name the templates see -> stored name
        self.names = set(self.alias)
        self.prefix = detect_prefix(defn, self.names)
        self.roles: dict[str, RoleSource] = {}
        self.missing: list[str] = []
        self.notes: list[str] = []

    def resolve(self, template: str) -> str | None:
        for candidate in (self.prefix + template, template):
            if candidate in self.names:
                return candidate
        return None

    def layer_indices(self) -> list[int]:
        found: set[int] = set()
        for entry in self.defn.layer + self.defn.expert:
            found |= {int(m.group("i")) for m in _matches(self.prefix + entry.name, self.names) if m.group("prefix") == ""}
        return sorted(found)

    def run(self) -> RoleMap:
        for entry in self.defn.globals:
            self.place(entry, entry.name, entry.key)
        layers = self.layer_indices()
        for i in layers:
            for entry in self.defn.layer:
                key = entry.key if entry.experts else layer_role(i, entry.key)
                self.place(entry, entry.name.replace("${i}", str(i)), key, layer=i)
            for e in self.expert_indices(i):
                for entry in self.defn.expert:
                    self.place(entry, entry.name.replace("${i}", str(i)).replace("${e}", str(e)),
                               expert_role(i, e, entry.key))
        used = {s.tensor for s in self.roles.values()}
        return RoleMap(roles=self.roles, definition=self.defn.name, how="", layout=self.layout, layers=layers,
                       unmapped=[n for n in self.infos if n in self.weights and n not in used],
                       ignored=[n for n in self.infos if n not in self.weights], missing=self.missing,
                       notes=self.notes)

    def expert_indices(self, i: int) -> list[int]:
        if not self.defn.expert:
            return []
        template = self.prefix + self.defn.expert[0].name.replace("${i}", str(i))
        return sorted({int(m.group("e")) for m in _matches(template, self.names) if m.group("prefix") == ""})

    def place(self, entry: Entry, template: str, key: str, layer: int | None = None) -> None:
        name = self.resolve(template)
        if name is None:
            if entry.tied and self.tie and entry.tied in self.roles:
                self.roles[key] = RoleSource(**{**self.roles[entry.tied].__dict__, "role": key,
                                                "tied_to": entry.tied})
            elif not entry.optional:
                self.missing.append(key)
            return
        info = self.infos[self.alias[name]]
        if entry.experts:
            for e in range(info.shape[0]):
                base = expert_role(layer if layer is not None else 0, e, entry.key.removeprefix("experts."))
                self.add(entry, info, base, expert_index=e)
        else:
            self.add(entry, info, key)

    def add(self, entry: Entry, info: TensorInfo, key: str, expert_index: int | None = None) -> None:
        shape = list(info.shape[1:] if expert_index is not None else info.shape)
        pre = tuple(t for t in entry.transforms if t == "transpose")
        if pre:
            shape = shape[::-1]
        post = tuple(("rope_unpermute", self.layout.value(t.split(":")[1]))
                     for t in entry.transforms if t.startswith("rope_unpermute") and self._known(t.split(":")[1]))
        if entry.split is None:
            self.roles[key] = RoleSource(key, info.name, tuple(shape), info.dtype, expert_index, None, pre, post)
            return
        cuts = self.cuts(entry, shape)
        if cuts is None:
            self.notes.append(f"{info.name}: cannot split {entry.key} without the layout "
                              f"({', '.join(str(s) for _, s in entry.split.parts)}); left unsplit")
            return
        base = key.rsplit(entry.key, 1)[0] if key.endswith(entry.key) else ""
        for part_key, cut in cuts:
            part_shape = list(shape)
            part_shape[cut.dim] = cut.groups * (cut.stop - cut.start)
            self.roles[base + part_key] = RoleSource(base + part_key, info.name, tuple(part_shape), info.dtype,
                                                     expert_index, cut, pre, post)

    def _known(self, field: str) -> bool:
        try:
            self.layout.value(field)
            return True
        except KeyError:
            self.notes.append(f"layout lacks {field}: rope permutation not undone")
            return False

    def cuts(self, entry: Entry, shape: list[int]) -> list[tuple[str, Cut]] | None:
        """The Cut of each part of a fused tensor, or None if the layout lacks a size."""
        split = entry.split
        assert split is not None
        try:
            sizes = [self.layout.value(s) for _, s in split.parts]
            groups = {"concat": 1, "heads_interleaved": self.layout.value("heads"),
                      "kv_groups": self.layout.value("kv_heads")}[split.layout]
        except KeyError:
            return None
        sizes = [s // groups for s in sizes]
        if sum(sizes) * groups != shape[split.dim]:
            self.notes.append(f"{entry.name}: parts {sizes} x {groups} do not add up to {shape[split.dim]}")
            return None
        out, start = [], 0
        for (part_key, _), size in zip(split.parts, sizes):
            out.append((part_key, Cut(split.dim, groups, start, start + size)))
            start += size
        return out


def apply_definition(defn: Definition, infos: dict[str, TensorInfo], layout: Layout, *,
                     tie: bool = True) -> RoleMap:
    """Map every tensor the definition names; the rest is reported as unmapped.

    `tie=False` (a config with tie_word_embeddings false) keeps an absent lm_head absent
    instead of pointing it at the embedding.
    """
    return _Mapper(defn, infos, layout, tie).run()
