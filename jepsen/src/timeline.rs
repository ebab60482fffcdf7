//! `timeline.svg`: a run's history drawn for people. Time runs left to
//! right; each client process has a lane in which every operation is a bar
//! from invocation to completion, green for ok, red for fail, orange for
//! info (grey: never completed); fault windows ([`crate::nemesis::window`])
//! are shaded across every lane with their action as label. Below, a
//! scatter of each operation's latency (log scale) against its completion
//! time. Hand-written SVG: hovering a bar or a window shows its details.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use crate::history::{Entry, Kind, Op};
use crate::nemesis::window::{windows, Window};

const WIDTH: f64 = 1400.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 20.0;
/// Room above the lanes for the legend and two rows of window labels.
const TOP: f64 = 58.0;
const LANE: f64 = 14.0;
const BAR: f64 = 10.0;
const GAP: f64 = 30.0;
const SCATTER: f64 = 180.0;
const BOTTOM: f64 = 30.0;
/// The scatter's latency axis: 1 ms to 10 s, log scale.
const LAT_MIN_MS: f64 = 1.0;
const LAT_DECADES: f64 = 4.0;
/// Above this many operations the bars carry no hover text, which would
/// make up most of the file (a long run has hundreds of thousands).
const MAX_TITLED_BARS: usize = 20_000;

/// One client operation, invocation to completion.
struct Bar {
    process: i64,
    start: u64,
    end: Option<u64>,
    kind: Kind,
    what: String,
}

fn colour(kind: Option<Kind>) -> &'static str {
    match kind {
        Some(Kind::Ok) => "#2ca02c",
        Some(Kind::Fail) => "#d62728",
        Some(Kind::Info) => "#ff7f0e",
        _ => "#999999",
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A short description of an operation (any workload's), from its JSON form.
fn describe(op: &Op, completion: Option<&Entry>) -> String {
    let json = serde_json::to_value(completion.map_or(op, |c| &c.op)).unwrap_or_default();
    let mut text = json.get("f").and_then(|f| f.as_str()).unwrap_or("op").to_string();
    if let Some(obj) = json.as_object() {
        for (k, v) in obj.iter().filter(|(k, v)| *k != "f" && !v.is_null()) {
            let _ = write!(text, " {k}={v}");
        }
    }
    if let Some(err) = completion.and_then(|c| c.error.as_deref()) {
        let _ = write!(text, " ({err})");
    }
    text
}

fn bars(history: &[Entry]) -> Vec<Bar> {
    let mut open: HashMap<i64, usize> = HashMap::new();
    let mut out: Vec<Bar> = Vec::new();
    for e in history.iter().filter(|e| e.process >= 0) {
        if e.kind == Kind::Invoke {
            open.insert(e.process, out.len());
            out.push(Bar {
                process: e.process,
                start: e.time,
                end: None,
                kind: Kind::Invoke,
                what: describe(&e.op, None),
            });
        } else if let Some(i) = open.remove(&e.process) {
            let b = &mut out[i];
            b.end = Some(e.time);
            b.kind = e.kind;
            b.what = describe(&e.op, Some(e));
        }
    }
    out
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// A tick spacing giving at most ~15 ticks over `span` seconds.
fn tick_step(span: f64) -> f64 {
    [
        0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    ]
    .into_iter()
    .find(|s| span / s <= 15.0)
    .unwrap_or(1800.0)
}

/// The timeline of `history` as an SVG document.
pub fn svg(history: &[Entry]) -> String {
    let bars = bars(history);
    let faults = windows(history);
    let lanes: BTreeMap<i64, usize> = {
        let mut ps: Vec<i64> = bars.iter().map(|b| b.process).collect();
        ps.sort_unstable();
        ps.dedup();
        ps.into_iter().enumerate().map(|(i, p)| (p, i)).collect()
    };
    let end_ns = history.iter().map(|e| e.time).max().unwrap_or(0).max(1);
    let span = seconds(end_ns);
    let plot_w = WIDTH - LEFT - RIGHT;
    let x = |ns: u64| LEFT + seconds(ns) / span * plot_w;
    let lanes_h = lanes.len().max(1) as f64 * LANE;
    let scatter_top = TOP + lanes_h + GAP;
    let height = scatter_top + SCATTER + BOTTOM;
    let lat_y = |ns: u64| {
        let ms = (ns as f64 / 1e6).max(LAT_MIN_MS);
        let frac = ((ms / LAT_MIN_MS).log10() / LAT_DECADES).min(1.0);
        scatter_top + SCATTER - frac * SCATTER
    };

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="sans-serif" font-size="10">"#
    );
    let _ = writeln!(
        s,
        r#"<rect x="0" y="0" width="{WIDTH}" height="{height:.0}" fill="white"/>"#
    );
    // Legend.
    let legend = [
        ("ok", Some(Kind::Ok)),
        ("fail", Some(Kind::Fail)),
        ("info", Some(Kind::Info)),
        ("pending", None),
    ];
    for (i, (label, kind)) in legend.iter().enumerate() {
        let lx = LEFT + i as f64 * 70.0;
        let _ = writeln!(
            s,
            r#"<rect x="{lx}" y="6" width="10" height="10" fill="{}"/><text x="{}" y="15">{label}</text>"#,
            colour(*kind),
            lx + 14.0
        );
    }
    let lx = LEFT + legend.len() as f64 * 70.0;
    let _ = writeln!(
        s,
        r##"<rect x="{lx}" y="6" width="10" height="10" fill="#6a5acd" fill-opacity="0.25"/><text x="{}" y="15">fault window</text>"##,
        lx + 14.0
    );
    // Fault windows, shaded over lanes and scatter, labels on two rows.
    for (i, w) in faults.iter().enumerate() {
        let (x0, x1) = (x(w.start), x(w.end));
        let fill = if w.injected { "#6a5acd" } else { "#999999" };
        let _ = writeln!(
            s,
            r##"<g class="nemesis"><title>{}</title><rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{fill}" fill-opacity="0.18"/><text x="{:.1}" y="{:.1}" fill="#333">{}</text></g>"##,
            escape(&window_title(w)),
            TOP - 4.0,
            (x1 - x0).max(1.0),
            scatter_top + SCATTER - TOP + 4.0,
            x0 + 2.0,
            if i % 2 == 0 { 34.0 } else { 47.0 },
            escape(&w.action),
        );
    }
    // Lanes.
    for (p, lane) in &lanes {
        let y = TOP + *lane as f64 * LANE;
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#333">p{p}</text><line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#eee"/>"##,
            LEFT - 6.0,
            y + BAR,
            y + LANE,
            WIDTH - RIGHT,
            y + LANE
        );
    }
    let titled = bars.len() <= MAX_TITLED_BARS;
    for b in &bars {
        let y = TOP + lanes[&b.process] as f64 * LANE + (LANE - BAR) / 2.0;
        let (x0, x1) = (x(b.start), x(b.end.unwrap_or(end_ns)));
        let kind = b.end.map(|_| b.kind);
        let latency = b
            .end
            .map(|e| format!(" in {:.1} ms", (e - b.start) as f64 / 1e6))
            .unwrap_or_default();
        let _ = write!(
            s,
            r#"<rect x="{x0:.1}" y="{y:.1}" width="{:.1}" height="{BAR}" fill="{}""#,
            (x1 - x0).max(0.5),
            colour(kind),
        );
        if titled {
            let _ = writeln!(s, "><title>p{} {}{latency}</title></rect>", b.process, escape(&b.what));
        } else {
            s.push_str("/>\n");
        }
    }
    // Latency scatter.
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="{:.1}" fill="#333">latency (log) at completion</text><rect x="{LEFT}" y="{scatter_top:.1}" width="{plot_w}" height="{SCATTER}" fill="none" stroke="#ccc"/>"##,
        scatter_top - 6.0
    );
    for (d, label) in ["1ms", "10ms", "100ms", "1s", "10s"].iter().enumerate() {
        let y = scatter_top + SCATTER - d as f64 / LAT_DECADES * SCATTER;
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#333">{label}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 3.0
        );
    }
    for b in &bars {
        if let Some(e) = b.end {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="1.6" fill="{}"/>"#,
                x(e),
                lat_y(e - b.start),
                colour(Some(b.kind))
            );
        }
    }
    // Time axis.
    let step = tick_step(span);
    let axis_y = scatter_top + SCATTER;
    let mut t = 0.0;
    while t <= span {
        let tx = LEFT + t / span * plot_w;
        let _ = writeln!(
            s,
            r##"<line x1="{tx:.1}" y1="{TOP}" x2="{tx:.1}" y2="{:.1}" stroke="#ddd" stroke-dasharray="2,3"/><text x="{tx:.1}" y="{:.1}" text-anchor="middle" fill="#333">{t}s</text>"##,
            axis_y + 4.0,
            axis_y + 16.0
        );
        t = ((t / step).round() + 1.0) * step;
    }
    s.push_str("</svg>\n");
    s
}

fn window_title(w: &Window) -> String {
    format!(
        "{}: {} ({:.2}s to {:.2}s{})",
        w.nemesis,
        w.action,
        seconds(w.start),
        seconds(w.end),
        if w.healed {
            ", healed"
        } else {
            ", heal failed or never ran"
        }
    )
}

/// Writes `timeline.svg` into `dir`.
pub fn write(dir: &Path, history: &[Entry]) -> std::io::Result<()> {
    std::fs::write(dir.join("timeline.svg"), svg(history))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(process: i64, kind: Kind, time: u64, op: Op, error: Option<&str>) -> Entry {
        Entry {
            process,
            kind,
            time,
            op,
            revision: None,
            error: error.map(str::to_string),
        }
    }

    fn nem(kind: Kind, time: u64, action: &str) -> Entry {
        e(-1, kind, time, Op::Nemesis { action: action.into() }, None)
    }

    fn write_op(value: u64) -> Op {
        Op::Write {
            key: "k<&>".into(),
            value,
        }
    }

    /// Checks XML well-formedness the simple way this file writes it: tags
    /// balance, attribute values are quoted, `&` starts an entity. Answers
    /// the element names in document order.
    fn well_formed(doc: &str) -> Vec<String> {
        let mut stack: Vec<String> = Vec::new();
        let mut names = Vec::new();
        let mut rest = doc;
        while let Some(open) = rest.find('<') {
            let text = &rest[..open];
            for (i, _) in text.match_indices('&') {
                let entity = &text[i..];
                assert!(
                    ["&amp;", "&lt;", "&gt;", "&quot;"]
                        .iter()
                        .any(|x| entity.starts_with(x)),
                    "bare & in {text:?}"
                );
            }
            let close = rest[open..].find('>').expect("unclosed tag") + open;
            let tag = &rest[open + 1..close];
            assert!(!tag.contains('<'), "< inside tag {tag:?}");
            assert_eq!(tag.matches('"').count() % 2, 0, "unbalanced quotes in {tag:?}");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
            } else {
                let name = tag
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .trim_end_matches('/')
                    .to_string();
                names.push(name.clone());
                if !tag.ends_with('/') {
                    stack.push(name);
                }
            }
            rest = &rest[close + 1..];
        }
        assert!(stack.is_empty(), "unclosed elements {stack:?}");
        assert!(rest.trim().is_empty());
        names
    }

    #[test]
    fn timeline_is_well_formed_svg_with_bars_and_the_fault_window() {
        let h = vec![
            e(0, Kind::Invoke, 0, write_op(1), None),
            e(1, Kind::Invoke, 1_000_000, write_op(2), None),
            e(0, Kind::Ok, 5_000_000, write_op(1), None),
            nem(Kind::Invoke, 6_000_000, "kill-all"),
            nem(Kind::Ok, 6_500_000, "kill -9 all members"),
            e(1, Kind::Info, 9_000_000, write_op(2), Some("timed out")),
            e(0, Kind::Invoke, 9_500_000, write_op(3), None),
            e(0, Kind::Fail, 9_700_000, write_op(3), Some("refused")),
            nem(Kind::Invoke, 10_000_000, "heal"),
            nem(Kind::Ok, 11_000_000, "heal"),
            e(2, Kind::Invoke, 12_000_000, write_op(4), None),
        ];
        let doc = svg(&h);
        let names = well_formed(&doc);
        assert_eq!(names.first().map(String::as_str), Some("svg"));
        // The fault window: shaded, labelled, with its times in the title.
        assert!(
            doc.contains(r#"<g class="nemesis"><title>kill-all: kill -9 all members (0.01s to 0.01s, healed)</title>"#)
        );
        assert!(doc.contains(">kill -9 all members</text>"));
        // One lane per process, a bar per operation in its outcome's colour.
        for p in ["p0", "p1", "p2"] {
            assert!(doc.contains(&format!(">{p}</text>")), "{p}");
        }
        assert_eq!(
            doc.matches(colour(Some(Kind::Ok))).count(),
            1 + 1 + 1,
            "legend, bar, dot"
        );
        assert_eq!(doc.matches(colour(Some(Kind::Fail))).count(), 3);
        assert_eq!(doc.matches(colour(Some(Kind::Info))).count(), 3);
        assert!(doc.contains("key=\"k&lt;&amp;&gt;\"") || doc.contains("key=&quot;k&lt;&amp;&gt;&quot;"));
        assert!(doc.contains("(timed out)"));
    }

    #[test]
    fn empty_history_still_draws() {
        well_formed(&svg(&[]));
    }
}
