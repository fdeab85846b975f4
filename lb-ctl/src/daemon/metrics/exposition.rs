//! The two exposition formats a scraper may ask for. OpenMetrics is the
//! library's own encoding (what Prometheus asks for first). The classic
//! text format (0.0.4: `curl`, `promtool check metrics`, older scrapers)
//! is derived from it: the formats differ only in that a classic counter's
//! HELP and TYPE lines carry its sample name (`..._total`) and that it has
//! no `# EOF` or `# UNIT` lines. Samples, labels and their escaping are the
//! library's in both.
use std::collections::HashSet;

use prometheus_client::registry::Registry;

/// Content type of the OpenMetrics answer.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the classic text answer.
pub const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether a request's `Accept` header asks for OpenMetrics.
pub fn wants_openmetrics(accept: &str) -> bool {
    accept.split(',').any(|media| {
        media.split(';').next().is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/openmetrics-text")
        })
    })
}

/// The registry in OpenMetrics text.
pub fn openmetrics(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String does not fail.
    prometheus_client::encoding::text::encode(&mut out, registry).expect("encoding into a String");
    out
}

/// The classic text format of an OpenMetrics text made by [`openmetrics`].
pub fn classic(openmetrics: &str) -> String {
    let counters: HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let name = if counters.contains(name) {
                    format!("{name}_total")
                } else {
                    name.to_owned()
                };
                out.push_str(prefix);
                out.push_str(&name);
                if !tail.is_empty() {
                    out.push(' ');
                    out.push_str(tail);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_are_read_as_media_ranges() {
        for (accept, open) in [
            (
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                true,
            ),
            ("Application/OpenMetrics-Text", true),
            ("text/plain", false),
            ("*/*", false),
            ("", false),
            ("application/openmetrics-textx", false),
        ] {
            assert_eq!(wants_openmetrics(accept), open, "{accept}");
        }
    }

    #[test]
    fn classic_counters_carry_their_sample_name_and_nothing_else_changes() {
        let om = "# HELP lb_drops Packets dropped.\n# TYPE lb_drops counter\nlb_drops_total{reason=\"a\\\"b\"} 5\n# HELP lb_up 1 while up.\n# TYPE lb_up gauge\nlb_up 1\n# UNIT lb_up seconds\n# EOF\n";
        assert_eq!(
            classic(om),
            "# HELP lb_drops_total Packets dropped.\n# TYPE lb_drops_total counter\nlb_drops_total{reason=\"a\\\"b\"} 5\n# HELP lb_up 1 while up.\n# TYPE lb_up gauge\nlb_up 1\n"
        );
    }
}
