//! `bench/latency.svg`: latency (p50 and p99) and throughput by concurrency, one line per
//! series, drawn from the `load c=…` lines `sesame-bench load` prints. Plain SVG, no
//! dependencies; log scales, since the series differ by orders of magnitude.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, bail};

/// One measured point of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Requests in flight.
    pub concurrency: f64,
    /// Requests per second.
    pub rps: f64,
    /// Median latency, µs.
    pub p50_us: f64,
    /// 99th percentile latency, µs.
    pub p99_us: f64,
}

/// The points in `load c=…` lines (other lines are ignored).
pub fn parse(text: &str) -> anyhow::Result<Vec<Point>> {
    let mut points = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("load ")) {
        let field = |name: &str| -> anyhow::Result<f64> {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .with_context(|| format!("no {name} in {line:?}"))?
                .parse()
                .with_context(|| format!("bad {name} in {line:?}"))
        };
        points.push(Point {
            concurrency: field("c")?,
            rps: field("rps")?,
            p50_us: field("p50_us")?,
            p99_us: field("p99_us")?,
        });
    }
    Ok(points)
}

const COLOURS: [&str; 5] = ["#1b6ac9", "#d1495b", "#2e933c", "#8f5fbf", "#e08a00"];
const PANEL_W: f64 = 420.0;
const PANEL_H: f64 = 300.0;
const MARGIN: f64 = 60.0;

/// Writes the chart of `series` (name, points) to `out`.
pub fn write(out: &Path, title: &str, series: &[(String, Vec<Point>)]) -> anyhow::Result<()> {
    if series.iter().all(|(_, p)| p.is_empty()) {
        bail!("nothing to draw");
    }
    std::fs::write(out, render(title, series)).with_context(|| format!("writing {}", out.display()))
}

fn render(title: &str, series: &[(String, Vec<Point>)]) -> String {
    let all: Vec<&Point> = series.iter().flat_map(|(_, p)| p).collect();
    let levels = {
        let mut c: Vec<f64> = all.iter().map(|p| p.concurrency).collect();
        c.sort_by(f64::total_cmp);
        c.dedup();
        c
    };
    let lat = LogAxis::covering(all.iter().flat_map(|p| [p.p50_us, p.p99_us]));
    let rps = LogAxis::covering(all.iter().map(|p| p.rps));
    let width = 2.0 * (PANEL_W + 2.0 * MARGIN);
    let height = PANEL_H + 2.0 * MARGIN + 22.0 * series.len() as f64;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        width / 2.0,
        escape(title)
    );
    let panels = [
        ("latency, µs (solid p50, dashed p99)", &lat, 0.0),
        ("requests per second", &rps, PANEL_W + 2.0 * MARGIN),
    ];
    for (label, axis, x0) in panels {
        let (left, top) = (x0 + MARGIN, MARGIN);
        let _ = writeln!(
            svg,
            r##"<rect x="{left}" y="{top}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#888"/>"##
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{label}</text>"#,
            left + PANEL_W / 2.0,
            top - 8.0
        );
        for tick in axis.ticks() {
            let y = top + axis.y(tick);
            let _ = writeln!(
                svg,
                r##"<line x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                left + PANEL_W,
                left - 6.0,
                y + 4.0,
                human(tick)
            );
        }
        for (i, c) in levels.iter().enumerate() {
            let x = left + x_at(i, levels.len());
            let _ = writeln!(
                svg,
                r#"<text x="{x:.1}" y="{}" text-anchor="middle">{c}</text>"#,
                top + PANEL_H + 16.0
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">requests in flight</text>"#,
            left + PANEL_W / 2.0,
            top + PANEL_H + 34.0
        );
    }
    for (si, (name, points)) in series.iter().enumerate() {
        let colour = COLOURS[si % COLOURS.len()];
        let x = |p: &Point| {
            let i = levels.iter().position(|c| *c == p.concurrency).unwrap_or(0);
            MARGIN + x_at(i, levels.len())
        };
        let line = |values: Vec<(f64, f64)>, dash: &str| {
            let pts: Vec<String> = values.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            format!(
                r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>"#,
                pts.join(" ")
            )
        };
        let p50 = points.iter().map(|p| (x(p), MARGIN + lat.y(p.p50_us))).collect();
        let p99 = points.iter().map(|p| (x(p), MARGIN + lat.y(p.p99_us))).collect();
        let offset = PANEL_W + 2.0 * MARGIN;
        let thr = points
            .iter()
            .map(|p| (offset + x(p), MARGIN + rps.y(p.rps)))
            .collect();
        let _ = writeln!(svg, "{}", line(p50, ""));
        let _ = writeln!(svg, "{}", line(p99, r#" stroke-dasharray="5,4""#));
        let _ = writeln!(svg, "{}", line(thr, ""));
        let ly = PANEL_H + 2.0 * MARGIN + 22.0 * si as f64;
        let _ = writeln!(
            svg,
            r#"<line x1="{MARGIN}" x2="{}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            MARGIN + 30.0,
            MARGIN + 38.0,
            ly + 4.0,
            escape(name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// Evenly spaced positions for the concurrency levels (they grow geometrically).
fn x_at(i: usize, n: usize) -> f64 {
    if n <= 1 {
        return PANEL_W / 2.0;
    }
    20.0 + (PANEL_W - 40.0) * i as f64 / (n - 1) as f64
}

/// A decade-aligned log scale over the panel's height.
struct LogAxis {
    lo: f64,
    hi: f64,
}

impl LogAxis {
    fn covering(values: impl Iterator<Item = f64>) -> Self {
        let (mut lo, mut hi) = (f64::MAX, f64::MIN);
        for v in values.filter(|v| *v > 0.0) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if lo > hi {
            (lo, hi) = (1.0, 10.0);
        }
        Self {
            lo: 10f64.powf(lo.log10().floor()),
            hi: 10f64.powf(hi.log10().ceil().max(lo.log10().floor() + 1.0)),
        }
    }

    /// Pixels from the top of the panel.
    fn y(&self, v: f64) -> f64 {
        let f = (v.max(self.lo).log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10());
        PANEL_H * (1.0 - f)
    }

    fn ticks(&self) -> Vec<f64> {
        let mut t = Vec::new();
        let mut v = self.lo;
        while v <= self.hi * 1.0001 {
            t.push(v);
            v *= 10.0;
        }
        t
    }
}

fn human(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{}M", v / 1e6),
        v if v >= 1e3 => format!("{}k", v / 1e3),
        v => format!("{v}"),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_load_lines_and_draws_every_series() {
        let text = "load c=1 conns=1 rps=2500 n=100 p50_us=380.0 p90_us=1 p99_us=700.5 max_us=1 mean_us=1\n\
                    something else\n\
                    load c=8 conns=1 rps=9000 n=100 p50_us=800.0 p90_us=1 p99_us=2000.0 max_us=1 mean_us=1\n";
        let points = parse(text).expect("parse");
        assert_eq!(points.len(), 2);
        assert_eq!(points[1].concurrency, 8.0);
        assert_eq!(points[1].p99_us, 2000.0);
        assert!(parse("load c=1 rps=x").is_err());
        let svg = render(
            "t <&>",
            &[("sesame".into(), points.clone()), ("floor".into(), points)],
        );
        assert_eq!(svg.matches("<polyline").count(), 6);
        assert!(svg.contains("t &lt;&amp;&gt;"));
        assert!(svg.ends_with("</svg>\n"));
    }

    #[test]
    fn log_axis_spans_whole_decades() {
        let axis = LogAxis::covering([120.0, 4500.0].into_iter());
        assert_eq!((axis.lo, axis.hi), (100.0, 10_000.0));
        assert_eq!(axis.ticks(), vec![100.0, 1000.0, 10_000.0]);
        assert!((axis.y(100.0) - PANEL_H).abs() < 1e-9);
        assert!(axis.y(10_000.0).abs() < 1e-9);
    }
}
