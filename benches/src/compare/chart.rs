//! A hand-written SVG bar chart of a comparison: one row per workload, two
//! panels (throughput, p99 latency), a timon bar and an etcd bar in each.
//! Bars are scaled per row (the larger of the pair spans the panel), since
//! workloads differ by orders of magnitude; the numbers are printed beside
//! the bars.

use std::fmt::Write as _;

use super::results::Results;

const TIMON: &str = "#1f77b4";
const ETCD: &str = "#ff7f0e";
const LABEL_W: f64 = 150.0;
const PANEL_W: f64 = 300.0;
const VALUE_W: f64 = 110.0;
const ROW_H: f64 = 44.0;
const TOP: f64 = 90.0;

/// Escapes text for an SVG text node or attribute.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn bars(svg: &mut String, x0: f64, y: f64, values: [f64; 2], unit: &str) {
    let max = values[0].max(values[1]);
    for (i, (v, color)) in values.iter().zip([TIMON, ETCD]).enumerate() {
        let w = if max > 0.0 { v / max * PANEL_W } else { 0.0 };
        let by = y + i as f64 * 17.0;
        let _ = writeln!(
            svg,
            r#"<rect x="{x0:.1}" y="{by:.1}" width="{w:.1}" height="15" fill="{color}"/><text x="{:.1}" y="{:.1}" font-size="11">{v:.2} {unit}</text>"#,
            x0 + w + 4.0,
            by + 12.0
        );
    }
}

/// The chart as an SVG document.
pub fn svg(results: &Results) -> String {
    let rows = &results.rows;
    let width = LABEL_W + 2.0 * (PANEL_W + VALUE_W);
    let height = TOP + ROW_H * rows.len() as f64 + 20.0;
    let right = LABEL_W + PANEL_W + VALUE_W;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let title = format!("timon vs etcd 3.4, 3 members each, {}", results.date);
    let label = if results.label.is_empty() {
        String::new()
    } else {
        format!(" ({})", results.label)
    };
    let _ = writeln!(
        svg,
        r#"<text x="10" y="22" font-size="16" font-weight="bold">{}{}</text>"#,
        esc(&title),
        esc(&label)
    );
    let _ = writeln!(
        svg,
        r#"<rect x="10" y="34" width="12" height="12" fill="{TIMON}"/><text x="26" y="45" font-size="12">timon</text><rect x="80" y="34" width="12" height="12" fill="{ETCD}"/><text x="96" y="45" font-size="12">etcd</text>"#
    );
    for (x, text) in [
        (LABEL_W, "throughput, ops/s (higher is better)"),
        (right, "p99 latency, ms (lower is better)"),
    ] {
        let _ = writeln!(
            svg,
            r#"<text x="{x}" y="75" font-size="13" font-weight="bold">{text}</text>"#
        );
    }
    for (i, row) in rows.iter().enumerate() {
        let y = TOP + i as f64 * ROW_H;
        let _ = writeln!(
            svg,
            r#"<text x="10" y="{:.1}" font-size="12">{}</text>"#,
            y + 14.0,
            esc(&row.name)
        );
        let ratio = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{r:.2}x"));
        let _ = writeln!(
            svg,
            r##"<text x="10" y="{:.1}" font-size="10" fill="#666">t/e {} ops, {} p99</text>"##,
            y + 28.0,
            ratio(row.ratios.rps),
            ratio(row.ratios.p99)
        );
        let (t, e) = (&row.timon.report, &row.etcd.report);
        bars(&mut svg, LABEL_W, y, [t.rps, e.rps], "");
        bars(&mut svg, right, y, [t.latency_ms.p99, e.latency_ms.p99], "ms");
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::results::{Row, Side};
    use crate::recorder::Recorder;
    use crate::report::Report;
    use std::time::Duration;

    fn side(ms: u64) -> Side {
        let mut rec = Recorder::default();
        rec.ok(Duration::from_millis(ms));
        Side::new(vec![Report::new("put", rec, Duration::from_secs(1))], vec![1024])
    }

    #[test]
    fn one_row_of_bars_per_workload_and_escaped_labels() {
        let results = Results {
            date: "2025-01-01T00-00-00Z".into(),
            label: "debug <noisy>".into(),
            cpus: 2,
            timon_bin: String::new(),
            etcd_bin: String::new(),
            rounds: 1,
            settings: serde_json::Value::Null,
            plan: serde_json::Value::Null,
            rows: vec![Row::new("put", side(1), side(2)), Row::new("range-l", side(3), side(1))],
        };
        let svg = svg(&results);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        // 2 workloads x 2 panels x 2 servers.
        assert_eq!(svg.matches(r#"height="15""#).count(), 8);
        assert!(svg.contains("debug &lt;noisy&gt;"));
        assert!(svg.contains(">range-l</text>"));
    }
}
