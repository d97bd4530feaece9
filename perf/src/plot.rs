//! SVG plots (plotters' SVG backend only: no fonts or system libraries).

use crate::break_even::BreakEven;
use crate::measure::fmt_ns;
use plotters::prelude::*;
use std::path::Path;

/// A line of the break-even plot: its label and how to read a row.
type Column = (&'static str, fn(&crate::break_even::Row) -> f64);

/// Distinct, readable line colours (matplotlib's "tab10"), in series order.
const COLORS: [RGBColor; 7] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(23, 190, 207),
];

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

const PERCENTILES: [&str; 5] = ["p50", "p90", "p99", "p99.9", "max"];

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// One line per subject through its p50, p90, p99, p99.9 and max, on a log
/// scale of nanoseconds.
pub fn latency(path: &Path, title: &str, series: &[(String, [f64; 5])]) -> Result<(), String> {
    let values = series.iter().flat_map(|(_, p)| p.iter().copied()).filter(|v| *v > 0.0);
    let (lo, hi) = values.fold((f64::INFINITY, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if lo.is_finite() { (lo / 1.5, hi * 1.5) } else { (1.0, 10.0) };
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(72)
        .build_cartesian_2d(-0.2f64..4.2f64, (lo..hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(5)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 0.01 && (0.0..5.0).contains(&i) {
                PERCENTILES[i as usize].to_string()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| fmt_ns(*y))
        .y_desc("round-trip time")
        .draw()
        .map_err(err)?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = color(i);
        chart
            .draw_series(
                LineSeries::new(
                    points.iter().enumerate().map(|(x, &y)| (x as f64, y.max(lo))),
                    color.stroke_width(2),
                )
                .point_size(3),
            )
            .map_err(err)?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// Speed-up (inline ÷ pool) against the work per message, log scale.
pub fn break_even(path: &Path, be: &BreakEven) -> Result<(), String> {
    let lines: [Column; 5] = [
        ("shardpool", |r| r.shardpool),
        ("shardpool after 1 ms idle", |r| r.shardpool_gap),
        ("shardpool, caller_spin 0", |r| r.no_spin),
        ("messaging_thread_pool 5", |r| r.mtp),
        ("messaging_thread_pool 5 after 1 ms idle", |r| r.mtp_gap),
    ];
    let top = be
        .rows
        .iter()
        .flat_map(|r| lines.iter().map(move |(_, f)| r.inline / f(r)))
        .fold(2.2f64, f64::max)
        .min(10.0);
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Break-even: 1000 messages of W ns of work, 2 workers", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d((60f64..160_000f64).log_scale(), 0f64..top)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_label_formatter(&|x| fmt_ns(*x))
        .y_label_formatter(&|y| format!("{y:.1}×"))
        .x_desc("work per message (W)")
        .y_desc("speed-up vs inline")
        .draw()
        .map_err(err)?;
    for (level, label) in [(1.0, "break-even (1×)"), (2.0, "ideal for 2 workers (2×)")] {
        let grey = RGBColor(150, 150, 150);
        chart
            .draw_series(LineSeries::new([(60.0, level), (160_000.0, level)], grey.stroke_width(1)))
            .map_err(err)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(1)));
    }
    for (i, (name, f)) in lines.iter().enumerate() {
        let color = color(i);
        let points: Vec<(f64, f64)> =
            be.rows.iter().map(|r| (r.work_ns as f64, (r.inline / f(r)).min(top))).collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)).point_size(3))
            .map_err(err)?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}
