"""Access-log parsing, lookup by token / time window, and field matching.

Sample logs live in tests/data/accesslog/:
* seed-lines.log: the egress-gateway line of seed 003 (section "Step 4", gateway access log) and the
  waypoint line of seed 000 (section "Step 4", waypoint log), the latter joined onto one line as Envoy
  writes it. Seed 000 shows an ``authority_for`` key and a trailing ``;`` in ``upstream_cluster``; upstream
  Istio has neither (documentation deviations).
* egress-gateway.log, sidecar-client.log, waypoint.log: lines shaped like Istio 1.30's default JSON
  format for the scenario catalogue's checks, mixed with pilot-agent/Envoy text lines.
* noise.log: ztunnel text and JSON lines, istiod JSON, a TEXT-encoded access line, broken JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conformance.probe.accesslog import (
    ISTIO_JSON_FIELDS,
    AccessLogEntry,
    Address,
    UnknownFieldError,
    describe_log,
    entries_for_probe,
    entries_in_window,
    entries_with_token,
    parse_address,
    parse_line,
    parse_lines,
)
from conformance.probe.log_matchers import (
    Absent,
    Contains,
    Exact,
    FieldMatcher,
    HostOfAddress,
    IsNull,
    LogExpectation,
    Not,
    PortOfAddress,
    Prefix,
    Present,
    match,
)
from tests.fakes.accesslogs import synthetic_log

DATA = Path(__file__).parent / "data" / "accesslog"


def read(name: str) -> str:
    return (DATA / name).read_text()


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# --------------------------------------------------------------------------------------------------
# Parsing


def test_the_format_has_istios_24_keys() -> None:
    assert len(ISTIO_JSON_FIELDS) == 24
    assert "authority" in ISTIO_JSON_FIELDS
    assert "authority_for" not in ISTIO_JSON_FIELDS


def test_seed_003_gateway_line_parses_with_types() -> None:
    entry = parse_line(read("seed-lines.log").splitlines()[0])
    assert entry is not None
    assert entry.response_code == 301
    assert entry.bytes_sent == 0
    assert entry.duration == 24
    assert entry.upstream_service_time == "24"  # a response header value: stays a string
    assert entry.method == "HEAD"
    assert entry.authority == "aliyun.com"
    assert entry.upstream_cluster == "outbound|80||aliyun.com"
    assert entry.route_name is None  # null
    assert entry.response_flags is None  # "-"
    assert entry.start_time == datetime(2022, 11, 30, 8, 3, 1, 315000, tzinfo=UTC)
    assert entry.downstream_remote_ip == "10.34.0.140"
    assert entry.upstream_host_port == 80
    assert entry.raw["istio_policy_status"] is None  # extra keys of that format are kept raw
    assert match(entry, {"upstream_cluster": "outbound|80||aliyun.com", "method": "HEAD"}).ok
    assert entry.value("bytes_received") == 0


def test_seed_000_waypoint_line_authority_for_is_not_a_field() -> None:
    entry = parse_line(read("seed-lines.log").splitlines()[1])
    assert entry is not None
    assert entry.raw["authority_for"] == "aliyun.com"
    assert entry.authority is None  # upstream Istio's key is absent from the documented line
    with pytest.raises(UnknownFieldError, match=r"authority_for.*'authority'"):
        match(entry, {"authority_for": "aliyun.com"})
    with pytest.raises(UnknownFieldError):
        entry.value("authority_for")
    # The documented cluster name carries a stray ';' that no Istio cluster name has.
    result = match(entry, {"upstream_cluster": "inbound-vip|80|http|aliyun.com"})
    assert not result.ok
    assert "inbound-vip|80|http|aliyun.com;" in str(result)
    assert match(entry, {"upstream_cluster": Prefix("inbound-vip|80|http|aliyun.com")}).ok


def test_tcp_line_has_null_l7_fields() -> None:
    entries = list(parse_lines(read("egress-gateway.log")))
    tcp = [e for e in entries if e.is_tcp]
    assert len(tcp) == 3
    first = tcp[0]
    assert (first.method, first.path, first.protocol, first.authority) == (None, None, None, None)
    assert first.response_code == 0
    assert first.requested_server_name == "www.httpbin.org"
    assert match(first, {"method": IsNull(), "path": Absent(), "upstream_cluster": "outbound|443||www.httpbin.org"})


def test_string_typed_format_with_dashes_is_normalised() -> None:
    line = json.dumps(
        {
            "start_time": "2026-11-20T10:00:00.000Z",
            "method": "-",
            "path": "",
            "response_code": "301",
            "bytes_sent": "239",
            "duration": "-",
            "upstream_cluster": "outbound|80||aliyun.com",
            "upstream_service_time": 12,
        }
    )
    entry = parse_line(line)
    assert entry is not None
    assert entry.response_code == 301
    assert entry.bytes_sent == 239
    assert entry.duration is None
    assert entry.method is None and entry.path is None
    assert entry.upstream_service_time == "12"


def test_noise_lines_are_skipped() -> None:
    text = read("noise.log")
    assert list(parse_lines(text)) == []
    for line in text.splitlines():
        assert parse_line(line) is None
    shape = describe_log(text)
    assert shape.json_entries == 0
    assert shape.text_access_lines == 1
    assert "TEXT-format" in str(shape)


FOREIGN_NUMBERS = '{"start_time": "2026-01-05T10:00:00.000Z", "response_code": "%s", "bytes_sent": "%s"}'


@pytest.mark.parametrize(
    ("line", "response_code"),
    [
        (FOREIGN_NUMBERS % ("²", "1"), None),  # a digit to str.isdigit(), not to int()
        (FOREIGN_NUMBERS % ("٤٠٣", "1"), None),  # Arabic-Indic digits: int() would read 403
        (FOREIGN_NUMBERS % ("1²", "-"), None),
        ('{"start_time": "x", "response_code": ' + "[" * 100_000 + "]" * 100_000 + "}", "skipped"),
        ('{"start_time": {"nested": 1}, "response_code": 1e999, "bytes_sent": [1]}', None),
    ],
    ids=["superscript", "arabic-indic", "digit-and-superscript", "deep-nesting", "odd-types"],
)
def test_foreign_values_never_raise(line: str, response_code: int | str | None) -> None:
    entry = parse_line(line)
    if response_code == "skipped":
        assert entry is None
    else:
        assert entry is not None
        assert entry.response_code is response_code
        assert entry.start_time is None or entry.start_time.tzinfo is not None
    assert list(parse_lines(line + "\n" + line)) == ([] if entry is None else [entry, entry])


def test_partial_json_line_is_skipped_but_neighbours_parse() -> None:
    entries = list(parse_lines(read("sidecar-client.log")))
    assert [e.upstream_cluster for e in entries] == [
        "PassthroughCluster",
        "BlackHoleCluster",
        "BlackHoleCluster",
        "outbound|80||aliyun.com",
        "outbound|80|aliyun|istio-egressgateway.istio-system.svc.cluster.local",
    ]
    assert describe_log(read("sidecar-client.log")).json_entries == 5


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10.0.0.5:443", Address("10.0.0.5", 443)),
        ("[fd00:10:244::5]:15008", Address("fd00:10:244::5", 15008)),
        ("envoy://connect_originate/10.64.47.199:15008", Address("10.64.47.199", 15008)),
        ("envoy://internal_client_address/", None),
        ("-", None),
        (None, None),
        ("aliyun.com", None),
        ("10.0.0.5:٤٤٣", None),
    ],
)
def test_parse_address(value: str | None, expected: Address | None) -> None:
    assert parse_address(value) == expected


# --------------------------------------------------------------------------------------------------
# Matching


def gateway_entry(token: str) -> AccessLogEntry:
    found = entries_with_token(read("egress-gateway.log"), token)
    assert len(found) == 1
    return found[0]


def test_egress_gateway_http_line_matches_egw04_expectation() -> None:
    entry = gateway_entry("3f9a1c2e7b6d4a10")
    result = match(
        entry,
        {
            "upstream_cluster": "outbound|80||aliyun.com",
            "authority": "aliyun.com",
            "method": "HEAD",
            "response_code": 301,
            "downstream_remote_address": HostOfAddress("10.244.0.15"),
            "upstream_host": PortOfAddress(80),
        },
    )
    assert result.ok, str(result)
    assert bool(result)


def test_mismatches_are_all_listed() -> None:
    entry = gateway_entry("3f9a1c2e7b6d4a10")
    result = match(
        entry,
        {
            "upstream_cluster": Prefix("outbound|443||"),
            "response_code": 403,
            "downstream_remote_address": HostOfAddress("10.244.0.99"),
            "method": "HEAD",
        },
    )
    assert not result.ok
    assert [m.field for m in result.mismatches] == ["upstream_cluster", "response_code", "downstream_remote_address"]
    text = str(result)
    assert "expected starts with 'outbound|443||', got 'outbound|80||aliyun.com'" in text
    assert "response_code: expected 403, got 301" in text
    assert "host 10.244.0.99" in text


def test_rbac_denial_line() -> None:
    entry = gateway_entry("77c0e5a9d1b24f3e")
    assert match(
        entry,
        {
            "response_code": 403,
            "response_code_details": Prefix("rbac_access_denied_matched_policy["),
            "upstream_host": Absent(),
            "upstream_cluster": "outbound|80||www.aliyun.com",
        },
    ).ok
    assert match(entry, {"response_code_details": Contains("policy[deny-demo-frontend]")}).ok


def test_mtls_origination_line_has_upstream_port_443() -> None:
    entry = gateway_entry("c41d7e09aa5f3b62")
    assert match(entry, {"upstream_cluster": "outbound|443||test.com", "upstream_host": PortOfAddress(443)}).ok
    assert not match(entry, {"upstream_host": PortOfAddress(80)}).ok


def test_blackhole_502_line_in_the_client_sidecar() -> None:
    (entry,) = entries_with_token(read("sidecar-client.log"), "5e6f708192a3b4c5")
    assert match(entry, {"upstream_cluster": "BlackHoleCluster", "response_code": 502, "route_name": "block_all"}).ok


def test_waypoint_inbound_vip_lines() -> None:
    text = read("waypoint.log")
    (plain,) = entries_with_token(text, "aa00bb11cc22dd33")
    (originated,) = entries_with_token(text, "ee44ff5566778899")
    spec: dict[str, FieldMatcher | str | int] = {
        "upstream_cluster": "inbound-vip|80|http|aliyun.com",
        "response_code": 301,
        "authority": "aliyun.com",
    }
    assert match(plain, {**spec, "upstream_host": PortOfAddress(80)}).ok
    assert match(originated, {**spec, "upstream_host": PortOfAddress(443)}).ok
    assert originated.downstream_local_ip == "240.240.0.7"
    assert originated.downstream_local_port == 80


def test_matcher_semantics() -> None:
    assert Exact(301).matches(301)
    assert not Exact(301).matches("301")
    assert not Exact("aliyun.com").matches(None)
    assert Prefix("outbound|443||").matches("outbound|443||test.com")
    assert not Prefix("outbound|443||").matches(None)
    assert HostOfAddress("10.0.0.5").matches("10.0.0.5:443")
    assert not HostOfAddress("10.0.0.5").matches("10.0.0.50:443")
    assert PortOfAddress(443).matches("envoy://connect_originate/10.0.0.5:443")
    assert not PortOfAddress(443).matches("10.0.0.5:4430")
    assert Absent().matches(None) and not Absent().matches("x")
    assert Present().matches(0) and not Present().matches(None)
    assert Not(Exact("BlackHoleCluster")).matches("PassthroughCluster")
    assert str(Not(Prefix("inbound|"))) == "not starts with 'inbound|'"


def test_spec_errors_are_errors_not_mismatches() -> None:
    entry = gateway_entry("3f9a1c2e7b6d4a10")
    with pytest.raises(UnknownFieldError, match="upstream_clusters"):
        match(entry, {"upstream_clusters": "outbound|80||aliyun.com"})
    with pytest.raises(TypeError, match="response_code"):
        match(entry, {"response_code": "301"})
    with pytest.raises(TypeError):
        match(entry, {"method": True})
    with pytest.raises(UnknownFieldError):
        LogExpectation({"authority_for": "aliyun.com"})


def test_missing_entry_is_a_non_match() -> None:
    result = match(None, {"response_code": 301})
    assert not result.ok
    assert str(result) == "no access-log entry"
    expectation = LogExpectation({"response_code": 301, "upstream_cluster": Prefix("outbound|80||")})
    assert not expectation.matches(None)
    assert expectation.matches(gateway_entry("3f9a1c2e7b6d4a10"))
    assert str(expectation) == "entry with response_code 301, upstream_cluster starts with 'outbound|80||'"


# --------------------------------------------------------------------------------------------------
# Lookup


def test_find_by_token_sees_user_agent_and_path() -> None:
    text = read("sidecar-client.log") + read("egress-gateway.log")
    both = entries_with_token(text, "3f9a1c2e7b6d4a10")
    assert [e.upstream_cluster for e in both] == [
        "outbound|80|aliyun|istio-egressgateway.istio-system.svc.cluster.local",
        "outbound|80||aliyun.com",
    ]
    in_path = json.dumps(
        {
            "start_time": "2026-11-20T10:00:00.000Z",
            "path": "/anything?egress_conformance_probe=feedc0de12345678",
            "response_code": 200,
            "user_agent": "curl/8.16.0",
        }
    )
    assert len(entries_with_token(in_path, "feedc0de12345678")) == 1


def test_token_only_in_another_field_does_not_count() -> None:
    line = json.dumps(
        {"start_time": "2026-11-20T10:00:00.000Z", "response_code": 200, "request_id": "x-0123456789abcdef"}
    )
    assert entries_with_token(line, "0123456789abcdef") == []
    assert entries_with_token(read("egress-gateway.log"), "ffffffffffffffff") == []
    with pytest.raises(ValueError):
        entries_with_token(line, "abc")


def test_tcp_lookup_by_window_and_sni() -> None:
    text = read("egress-gateway.log")
    started = utc("2026-11-20T10:15:20.100+00:00")
    found = entries_in_window(
        text,
        started,
        started + timedelta(milliseconds=300),
        skew=timedelta(seconds=2),
        requested_server_name="www.httpbin.org",
    )
    assert [e.start_time for e in found] == [utc("2026-11-20T10:15:20.250+00:00")]
    wide = entries_in_window(
        text,
        started,
        started + timedelta(seconds=1),
        skew=timedelta(seconds=15),
        requested_server_name="www.httpbin.org",
    )
    # Both connections with that SNI fall in a wide window, nearest to the probe first; the other SNI never.
    assert [e.downstream_remote_address for e in wide] == ["10.244.0.15:40112", "10.244.0.15:40190"]
    none = entries_in_window(
        text, started, started + timedelta(seconds=1), skew=timedelta(seconds=0), requested_server_name="test.com"
    )
    assert none == []


@dataclass(frozen=True)
class ProbeStub:
    token: str
    started_at: datetime
    finished_at: datetime


def test_entries_for_probe_by_token_or_by_window() -> None:
    text = read("egress-gateway.log")
    started = utc("2026-11-20T10:15:31.800+00:00")
    probe = ProbeStub("c41d7e09aa5f3b62", started, started + timedelta(milliseconds=200))
    (by_token,) = entries_for_probe(text, probe)
    assert by_token.upstream_cluster == "outbound|443||test.com"
    by_window = entries_for_probe(text, probe, requested_server_name="www.httpbin.org", skew=timedelta(seconds=1))
    assert [e.downstream_remote_address for e in by_window] == ["10.244.0.15:40190"]


def test_window_without_sni_and_with_predicate() -> None:
    text = read("egress-gateway.log")
    started = utc("2026-11-20T10:15:21.000+00:00")
    found = entries_in_window(text, started, started, skew=timedelta(seconds=1))
    assert [e.requested_server_name for e in found] == ["www.alibabacloud.com", "www.httpbin.org"]
    tcp_only = entries_in_window(
        text, utc("2026-11-20T10:15:00+00:00"), utc("2026-11-20T10:15:40+00:00"), predicate=lambda e: e.is_tcp
    )
    assert len(tcp_only) == 3
    with pytest.raises(ValueError, match="timezone"):
        entries_in_window(text, datetime(2026, 11, 20), datetime(2026, 11, 20))


def test_window_handles_offset_timestamps_after_parsing() -> None:
    line = json.dumps(
        {
            "start_time": "2026-11-20T18:15:20.250+08:00",
            "response_code": 0,
            "requested_server_name": "www.httpbin.org",
            "upstream_cluster": "outbound|443||www.httpbin.org",
        }
    )
    started = utc("2026-11-20T10:15:20+00:00")
    assert len(entries_in_window(line, started, started, requested_server_name="www.httpbin.org")) == 1


# --------------------------------------------------------------------------------------------------
# Scale


def test_token_search_in_100k_lines_parses_only_the_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    text, tokens = synthetic_log(100_000)
    assert len(text.splitlines()) == 100_000
    wanted = tokens[len(tokens) // 2]
    parsed: list[str] = []
    real_loads = json.loads

    def counting_loads(raw: str) -> object:
        parsed.append(raw)
        return real_loads(raw)

    monkeypatch.setattr("conformance.probe.accesslog.json.loads", counting_loads)
    found = entries_with_token(text, wanted)
    assert len(found) == 1
    assert wanted in (found[0].user_agent or "")
    assert len(parsed) == 1  # the prefilter kept every other line away from the JSON parser


def test_window_search_in_100k_lines_is_correct() -> None:
    text, _ = synthetic_log(100_000, seed=11)
    started = utc("2026-11-20T10:15:20.200+00:00")
    found = entries_in_window(
        text, started, started, skew=timedelta(milliseconds=100), requested_server_name="www.httpbin.org"
    )
    expected = sum(1 for line in text.splitlines() if '"start_time":"2026-11-20T10:15:20.250Z"' in line)
    assert expected > 0
    assert len(found) == expected
