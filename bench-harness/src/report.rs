//! What a run leaves behind: the percentile distribution in HdrHistogram's
//! `.hgrm` text format, a JSON summary, and a latency-by-percentile SVG plot.

use std::fmt::Write as _;
use std::path::Path;

use hdrhistogram::Histogram;

use crate::stats::percentiles_ms;

/// HdrHistogram's `outputPercentileDistribution` text, values in ms.
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{:>12} {:>14} {:>10} {:>14}\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
    for v in h.iter_quantiles(5) {
        let q = v.quantile_iterated_to();
        let value = v.value_iterated_to() as f64 / 1000.0;
        if q < 1.0 {
            let _ = writeln!(
                out,
                "{value:>12.3} {q:>14.12} {:>10} {:>14.2}",
                v.count_since_last_iteration(),
                1.0 / (1.0 - q)
            );
        } else {
            let _ = writeln!(out, "{value:>12.3} {q:>14.12} {:>10}", v.count_since_last_iteration());
        }
    }
    let _ = writeln!(out, "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]", h.mean() / 1000.0, h.stdev() / 1000.0);
    let _ = writeln!(out, "#[Max     = {:>12.3}, Total count    = {:>12}]", h.max() as f64 / 1000.0, h.len());
    let _ = writeln!(out, "#[Buckets = {:>12}, SubBuckets     = {:>12}]", h.buckets(), h.distinct_values());
    out
}

/// The JSON object of one latency distribution.
pub fn latency_json(h: &Histogram<u64>) -> serde_json::Value {
    let [p50, p95, p99, p999, max, mean] = percentiles_ms(h);
    serde_json::json!({
        "count": h.len(), "mean_ms": mean, "p50_ms": p50, "p95_ms": p95, "p99_ms": p99,
        "p99_9_ms": p999, "max_ms": max,
    })
}

/// A latency-by-percentile plot (x: percentile on the usual 1/(1-p) log
/// scale, y: milliseconds), one line per distribution.
pub fn svg(title: &str, series: &[(&str, &Histogram<u64>)]) -> String {
    let (w, h, left, bottom, top, right) = (800.0, 480.0, 70.0, 50.0, 40.0, 20.0);
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let max_x = 6.0; // up to 99.9999%
    let max_ms = series.iter().map(|(_, hist)| hist.max() as f64 / 1000.0).fold(0.1, f64::max) * 1.1;
    let x = |q: f64| left + ((1.0 / (1.0 - q.min(0.999_999))).log10() / max_x).min(1.0) * plot_w;
    let y = |ms: f64| top + plot_h - (ms / max_ms) * plot_h;
    let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect width="{w}" height="{h}" fill="white"/><text x="{left}" y="24" font-size="15">{title}</text>"#
    );
    for (i, label) in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"].iter().enumerate() {
        let px = left + i as f64 / max_x * plot_w;
        let _ = writeln!(
            s,
            r##"<line x1="{px}" y1="{top}" x2="{px}" y2="{}" stroke="#ddd"/><text x="{px}" y="{}" text-anchor="middle">{label}</text>"##,
            top + plot_h,
            top + plot_h + 18.0
        );
    }
    for i in 0..=5 {
        let ms = max_ms * i as f64 / 5.0;
        let py = y(ms);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{py}" x2="{}" y2="{py}" stroke="#eee"/><text x="{}" y="{}" text-anchor="end">{ms:.2}</text>"##,
            left + plot_w,
            left - 6.0,
            py + 4.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="16" y="{}" transform="rotate(-90 16 {})">latency (ms)</text>"#,
        top + plot_h / 2.0,
        top + plot_h / 2.0
    );
    let _ = writeln!(s, r#"<text x="{}" y="{}" text-anchor="middle">percentile</text>"#, left + plot_w / 2.0, h - 8.0);
    for (i, (name, hist)) in series.iter().enumerate() {
        if hist.is_empty() {
            continue;
        }
        let pts: Vec<String> = hist
            .iter_quantiles(5)
            .map(|v| format!("{:.1},{:.1}", x(v.quantile_iterated_to()), y(v.value_iterated_to() as f64 / 1000.0)))
            .collect();
        let c = colors[i % colors.len()];
        let _ = writeln!(s, r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"#, pts.join(" "));
        let _ =
            writeln!(s, r#"<text x="{}" y="{}" fill="{c}">{name}</text>"#, left + 10.0, top + 16.0 + 16.0 * i as f64);
    }
    s.push_str("</svg>\n");
    s
}

/// Writes `name` under `dir`.
pub fn write(dir: &Path, name: &str, text: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(name), text)
}
