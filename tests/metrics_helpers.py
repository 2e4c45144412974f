"""Reading the Prometheus exposition in tests: parsed with prometheus_client's own parser, then looked up by name and
labels."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

# Every family issue 17 names, by the sample names it exposes and the labels each sample carries besides `node`.
REQUIRED_SAMPLES = {
    "gateway_agents_connected": set(),
    "gateway_tunnels_connected": set(),
    "gateway_sse_streams_open": {"kind"},
    "gateway_sessions_live": set(),
    "gateway_relay_frames_total": {"direction"},
    "gateway_relay_bytes_total": {"direction"},
    "gateway_relay_latency_seconds_bucket": {"direction", "le"},
    "gateway_relay_latency_seconds_count": {"direction"},
    "gateway_relay_latency_seconds_sum": {"direction"},
    "gateway_ingress_requests_total": {"code"},
    "gateway_ingress_duration_seconds_bucket": {"le"},
    "gateway_ingress_duration_seconds_count": set(),
    "gateway_ingress_duration_seconds_sum": set(),
    "gateway_http_requests_total": {"method", "code"},
    "gateway_oauth_tokens_issued_total": {"grant_type"},
    "gateway_handshakes_total": {"result"},
    "gateway_rate_limited_total": {"scope"},
    "process_resident_memory_bytes": set(),
    "process_cpu_seconds_total": set(),
    "python_info": {"implementation", "major", "minor", "patchlevel", "version"},
}


@dataclass(frozen=True)
class Exposition:
    text: str
    samples: list[tuple[str, dict[str, str], float]]
    types: dict[str, str]  # family name -> type

    def value(self, name: str, **labels: str) -> float | None:
        """The one sample of `name` whose labels include `labels` (None when there is none)."""
        found = [v for n, sample_labels, v in self.samples if n == name and labels.items() <= sample_labels.items()]
        assert len(found) <= 1, (name, labels, found)
        return found[0] if found else None

    def get(self, name: str, **labels: str) -> float:
        """As `value`, with an absent sample read as 0 (a counter child not created yet)."""
        found = self.value(name, **labels)
        return 0.0 if found is None else found

    def label_names(self, name: str) -> set[frozenset[str]]:
        return {frozenset(labels) for n, labels, _ in self.samples if n == name}

    def nodes(self) -> set[str]:
        return {labels.get("node", "") for _, labels, _ in self.samples}


def parse(text: str) -> Exposition:
    samples = []
    types = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        samples += [(s.name, dict(s.labels), s.value) for s in family.samples]
    return Exposition(text, samples, types)


def missing_samples(exposition: Exposition) -> dict[str, str]:
    """The required samples that are absent or carry other labels than REQUIRED_SAMPLES says (plus `node`)."""
    problems = {}
    for name, labels in REQUIRED_SAMPLES.items():
        seen = exposition.label_names(name)
        if not seen:
            problems[name] = "absent"
        elif seen != {frozenset({*labels, "node"})}:
            problems[name] = f"labels {sorted(map(sorted, seen))}"
    return problems
