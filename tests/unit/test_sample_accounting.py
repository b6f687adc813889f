"""Nothing a sample file holds is dropped unexplained: a walk over every element of every
XML sample (CTF, CIN census, SSDA903), every column of every SSDA903 CSV, every element of
every resource of every FHIR sample (Bundle entries, single resources, ndjson lines) and
every key of the JSON forms' examples finds each one taken (an element the adapter declares
it reads, a column it reads) or named by a not-taken line (itself or a part that holds it),
and text beside elements named as stray. The samples are read from the shared
folder by path."""

from __future__ import annotations

import copy
import csv
import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from hub.adapters import cin, ctf, fhir_elements, school_mis_json, social_care_json, ssda903
from hub.adapters.registry import parse
from hub.ingest.model import AdapterResult, NotTaken

pytestmark = pytest.mark.samples

_SEGMENT = re.compile(r"^(?P<tag>[^\[#]+)(?:\[(?P<index>\d+|\*)\])?$")


def instances(root: ET.Element) -> Iterator[tuple[str, list[tuple[str, int]], ET.Element]]:
    """(path without indices, [(tag, 1-based index among same-tag siblings)], element) for
    every element below the root, parents before children."""

    def walk(el: ET.Element, path: str, segs: list[tuple[str, int]]) -> Iterator[Any]:
        seen: dict[str, int] = {}
        for child in el:
            if not isinstance(child.tag, str):
                continue
            tag = child.tag.rpartition("}")[2]
            seen[tag] = seen.get(tag, 0) + 1
            sub, sub_segs = (f"{path}/{tag}" if path else tag), [*segs, (tag, seen[tag])]
            yield sub, sub_segs, child
            yield from walk(child, sub, sub_segs)

    yield from walk(root, "", [])


def names(line: NotTaken, segs: list[tuple[str, int]], drop: int) -> bool:
    """Whether a not-taken line's ref names this element or a part holding it: segment by
    segment the tags agree and an index in the ref (`[n]`) is the element's (`[*]` or none
    stands for any)."""
    ref = line.ref.split("#", 1)[0]
    parts = ref.split("/")
    mine = segs[drop:]
    if len(parts) > len(mine):
        return False
    for part, (tag, index) in zip(parts, mine, strict=False):
        m = _SEGMENT.match(part)
        if m is None or m["tag"] != tag:
            return False
        if m["index"] not in (None, "*") and int(m["index"]) != index:
            return False
    return True


def stray(el: ET.Element) -> bool:
    return bool((el.text or "").strip()) or any((c.tail or "").strip() for c in el)


XmlCase = tuple[str, Callable[[bytes], AdapterResult], frozenset[str], int]
XML_CASES: list[XmlCase] = [
    ("ctf", lambda d: ctf.parse_ctf(d, agency="s"), ctf.TAKEN_ELEMENTS, 1),  # CTFpupilData
    ("cin", lambda d: cin.parse_cin(d, agency="la"), cin.TAKEN_ELEMENTS, 1),  # Children
    ("ssda903", lambda d: ssda903.parse_ssda903_xml(d, agency="la", la_code="201"),
     ssda903.TAKEN_ELEMENTS, 0),
]  # fmt: skip


def xml_samples(samples_dir: Path) -> Iterator[tuple[Path, XmlCase]]:
    for case in XML_CASES:
        for path in sorted((samples_dir / case[0]).glob("*.xml")):
            yield path, case


def test_every_element_of_every_xml_sample_is_taken_or_has_a_not_taken_line(
    samples_dir: Path,
) -> None:
    files = elements = 0
    for path, (_folder, read, taken, drop) in xml_samples(samples_dir):
        data = path.read_bytes()
        result = read(data)
        root = ET.fromstring(data)  # noqa: S314 - a published sample
        header_drop = 0  # header elements' refs start at Header, below the root
        for where, segs, el in instances(root):
            d = drop if segs[0][0] not in ("Header",) else header_drop
            lines = [n for n in result.not_taken if names(n, segs, d)]
            elements += 1
            if any("#" not in n.ref for n in lines):
                continue  # not taken, with its reason (or a part holding it is)
            assert where in taken, (path.name, where)  # else it is one the adapter reads
            assert taken >= {where.rsplit("/", 1)[0]} or "/" not in where, where
            if stray(el) and (len(el) or any(t.startswith(f"{where}/") for t in taken)):
                assert any(n.rule == "hub.stray_text" for n in lines), (path.name, where)
        files += 1
    assert files >= 8 and elements > 10_000


def test_every_column_of_every_ssda903_csv_is_read_or_has_a_not_taken_line(
    samples_dir: Path,
) -> None:
    for name, read in (
        ("episodes.csv", ssda903._READ_EPISODE),
        ("header.csv", ssda903._READ_HEADER),
    ):
        data = (samples_dir / "ssda903" / name).read_bytes()
        result = parse("ssda903", data, "text/csv", "la", la_code="201")
        columns = next(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
        table = "Episodes" if name == "episodes.csv" else "Header"
        unread = {n.ref for n in result.not_taken if n.rule == "hub.not_read"}
        for column in columns:
            column = column.strip().upper()
            assert column in read or f"{table}/{column}" in unread, (name, column)
        assert unread  # postcodes, ethnicity: each explained


FHIR_MEDIA = {".xml": "application/fhir+xml", ".ndjson": "application/fhir+ndjson"}


def test_every_element_of_every_fhir_sample_is_taken_or_has_a_not_taken_line(
    samples_dir: Path,
) -> None:
    """Every value of every resource (each leaf path of its JSON form; an XML sample read
    as FHIR's JSON form) is accounted for: its resource is not taken, with a line; or the
    resource was taken (a fact, or context for one) and the adapter reads the element
    (`fhir_elements.TAKEN_ELEMENTS`); or a `hub.not_read` line names it or an element
    holding it (`Bundle.entry[*].resource(Observation).meta.tag`)."""
    resources = elements = in_taken = 0
    for folder in ("ukcore", "fhir-r4", "synthea"):
        for path in sorted((samples_dir / folder).iterdir()):
            if path.suffix not in (".xml", ".json", ".ndjson"):
                continue
            data = path.read_bytes()
            media = FHIR_MEDIA.get(path.suffix, "application/fhir+json")
            result = parse("fhir", data, media, "city-health")
            used = [f.ref for f in result.facts] + result.context
            unread = [n for n in result.not_taken if n.rule == "hub.not_read"]
            whole = [n.ref for n in result.not_taken if n.rule != "hub.not_read"]
            for where, resource in fhir_resources(data, path.suffix):
                resources += 1
                rtype = resource["resourceType"]
                leaves = list(dict.fromkeys(fhir_elements.leaf_paths(resource)))
                elements += len(leaves)
                if any(refused(r, where) for r in whole):
                    continue  # not taken as a whole, with its reason
                assert any(r.startswith(where) for r in used), (path.name, where)
                taken = fhir_elements.TAKEN_ELEMENTS[rtype]
                for leaf in leaves:
                    in_taken += 1
                    if fhir_elements.covered(leaf, taken):
                        continue  # an element the adapter reads
                    named = [n for n in unread if names_element(n.ref, where, rtype, leaf)]
                    assert named, (path.name, where, leaf)
    assert resources > 100 and elements > 8_000 and in_taken > 3_000


def refused(ref: str, where: str) -> bool:
    """Whether a line's ref names the resource at `where` as a whole (`Bundle.entry[3]`,
    `Bundle.entry[3].resource(Condition/c1)`, `resource(Patient)`, `line[2](Patient/p)`)."""
    if not ref.startswith(where):
        return False
    rest = ref[len(where) :]
    return re.fullmatch(r"(\.resource)?(\([^)]*\))?", rest) is not None


def names_element(ref: str, where: str, rtype: str, leaf: str) -> bool:
    """Whether a not-read line (`<where with [*] for any index>(<type>).<element>`) names
    this element of the resource at `where`, or an element holding it."""
    m = re.fullmatch(r"(?P<at>.*?)\((?P<type>[A-Za-z]+)\)\.(?P<element>.+)", ref)
    if m is None or m["type"] != rtype:
        return False
    at = re.escape(m["at"]).replace(re.escape("[*]"), r"\[\d+\]")
    if not any(re.fullmatch(at, w) for w in (where, f"{where}.resource")):
        return False
    return leaf == m["element"] or leaf.startswith(f"{m['element']}.")


def fhir_resources(data: bytes, suffix: str) -> list[tuple[str, dict[str, Any]]]:
    """Each resource of a FHIR message in its JSON form, with where it is as the adapter's
    refs begin (`Bundle.entry[3]`, `resource`, `line[2]`)."""
    if suffix == ".ndjson":
        lines = data.split(b"\n")
        return [
            (f"line[{n}]", orjson.loads(line))
            for n, line in enumerate(lines, start=1)
            if line.strip()
        ]
    if suffix == ".xml":
        from fhir.resources.R4B import get_fhir_model_class

        root = ET.fromstring(data)  # noqa: S314 - a published sample
        cls = get_fhir_model_class(root.tag.rpartition("}")[2])
        doc = cls.model_validate_xml(data).model_dump(mode="json", by_alias=True, exclude_none=True)
    else:
        doc = orjson.loads(data)
    if doc.get("resourceType") != "Bundle":
        return [("resource", doc)]
    return [
        (f"Bundle.entry[{i}]", e["resource"])
        for i, e in enumerate(doc.get("entry", []))
        if isinstance(e.get("resource"), dict)
    ]


def json_keys(doc: Any, path: str = "") -> Iterator[str]:
    """Every key path of a JSON document, list indices as `*`."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            sub = f"{path}/{key}"
            yield sub
            yield from json_keys(value, sub)
    elif isinstance(doc, list):
        for value in doc:
            yield from json_keys(value, f"{path}/*")


@pytest.mark.parametrize(
    ("module", "reader"),
    [
        (school_mis_json, school_mis_json.parse_school_mis_json),
        (social_care_json, social_care_json.parse_social_care_json),
    ],
)
def test_every_key_of_the_json_forms_is_taken_or_has_a_not_taken_line(
    module: Any, reader: Callable[..., AdapterResult]
) -> None:
    message = copy.deepcopy(module.EXAMPLE)
    message["stray_key"] = {"nested": 1}  # a key no form has
    first_list = next(k for k, v in message.items() if isinstance(v, list) and v)
    message[first_list][0]["stray_item_key"] = "x"
    result = reader(orjson.dumps(message), agency="a")
    unknown = {n.ref for n in result.not_taken}
    assert "/stray_key" in unknown and f"/{first_list}/*/stray_item_key" in unknown
    for key in json_keys(message):
        held = any(key == u or key.startswith(f"{u}/") for u in unknown)
        assert held or known_key(module, key), key


def known_key(module: Any, key: str) -> bool:
    """Whether the form's JSON Schema (the message model's) has this key path."""
    schema = module.json_schema()
    node: Any = schema
    defs = schema.get("$defs", {})
    for part in key.strip("/").split("/"):
        while isinstance(node, dict) and ("$ref" in node or "anyOf" in node):
            if "$ref" in node:
                node = defs[node["$ref"].rsplit("/", 1)[-1]]
            else:
                node = next((o for o in node["anyOf"] if o.get("type") != "null"), {})
        if part == "*":
            node = node.get("items", {}) if isinstance(node, dict) else {}
            continue
        props = node.get("properties", {}) if isinstance(node, dict) else {}
        if part not in props:
            return False
        node = props[part]
    return True
