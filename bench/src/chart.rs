//! A small line chart as hand-written SVG: panels side by side, each with a
//! log₂ x axis and a log₁₀ y axis, one line per series, one legend for all.
//! Black on white, so that it reads the same in light and dark viewers; the
//! series differ in dash and marker as well as colour.

use std::fmt::Write;

/// One line: its name, and its points (x, y), both above zero.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// One panel: its title, its axes' labels, and its lines (the n-th series of
/// every panel is drawn alike, under the n-th legend entry).
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

/// How the n-th series is drawn: colour, dash pattern, marker.
const STYLES: [(&str, &str, Marker); 4] =
    [("#1f5fbf", "", Marker::Circle), ("#c8401e", "8 4", Marker::Square), ("#4d4d4d", "2 3", Marker::Diamond), ("#2a8a3a", "12 3 3 3", Marker::Circle)];

#[derive(Clone, Copy)]
enum Marker {
    Circle,
    Square,
    Diamond,
}

const PANEL_WIDTH: f64 = 470.0;
const PANEL_HEIGHT: f64 = 330.0;
/// Room around each panel's plot area for ticks and labels.
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 55.0;
/// Room above the panels for the title and the legend.
const HEADER: f64 = 70.0;

/// The chart as an SVG document.
pub fn svg(title: &str, panels: &[Panel]) -> String {
    let width = PANEL_WIDTH * panels.len() as f64;
    let height = HEADER + PANEL_HEIGHT;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12" fill="#111">"##
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(out, r#"<text x="{}" y="26" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"#, width / 2.0, escape(title));
    legend(&mut out, panels, width);
    for (index, panel) in panels.iter().enumerate() {
        draw_panel(&mut out, panel, index as f64 * PANEL_WIDTH, HEADER);
    }
    out.push_str("</svg>\n");
    out
}

/// One entry per series of the first panel, centred in a row below the title.
fn legend(out: &mut String, panels: &[Panel], width: f64) {
    let Some(first) = panels.first() else { return };
    let entry_width = 170.0;
    let start = (width - entry_width * first.series.len() as f64) / 2.0;
    for (index, series) in first.series.iter().enumerate() {
        let (colour, dash, marker) = STYLES[index % STYLES.len()];
        let x = start + index as f64 * entry_width;
        let y = 52.0;
        let _ = writeln!(out, r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{colour}" stroke-width="2.5" stroke-dasharray="{dash}"/>"#, x + 36.0);
        draw_marker(out, marker, colour, x + 18.0, y);
        let _ = writeln!(out, r#"<text x="{}" y="{}">{}</text>"#, x + 44.0, y + 4.0, escape(&series.label));
    }
}

fn draw_panel(out: &mut String, panel: &Panel, left: f64, top: f64) {
    let (plot_left, plot_top) = (left + LEFT, top + TOP);
    let (plot_width, plot_height) = (PANEL_WIDTH - LEFT - RIGHT, PANEL_HEIGHT - TOP - BOTTOM);
    let points = || panel.series.iter().flat_map(|series| series.points.iter().copied()).filter(|&(x, y)| x > 0.0 && y > 0.0);
    let Some((x_range, y_range)) = ranges(points()) else { return };
    let to_x = |x: f64| plot_left + (x.log2() - x_range.0) / (x_range.1 - x_range.0) * plot_width;
    let to_y = |y: f64| plot_top + plot_height - (y.log10() - y_range.0) / (y_range.1 - y_range.0) * plot_height;

    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle" font-size="14" font-weight="bold">{}</text>"#,
        plot_left + plot_width / 2.0,
        top + 22.0,
        escape(&panel.title)
    );
    // Grid and ticks: every power of two on x, 1-2-5 of each decade on y.
    let mut x_tick = 2f64.powf(x_range.0.ceil());
    while x_tick.log2() <= x_range.1 + 1e-9 {
        let x = to_x(x_tick);
        let _ = writeln!(out, r##"<line x1="{x}" y1="{plot_top}" x2="{x}" y2="{}" stroke="#ddd"/>"##, plot_top + plot_height);
        let _ = writeln!(out, r#"<text x="{x}" y="{}" text-anchor="middle">{}</text>"#, plot_top + plot_height + 18.0, number(x_tick));
        x_tick *= 2.0;
    }
    for decade in (y_range.0 as i32)..=(y_range.1 as i32) {
        for step in [1.0, 2.0, 5.0] {
            let value = step * 10f64.powi(decade);
            if value.log10() > y_range.1 + 1e-9 {
                continue;
            }
            let y = to_y(value);
            let (colour, label) = if step == 1.0 { ("#bbb", true) } else { ("#eee", plot_height / (y_range.1 - y_range.0) > 60.0) };
            let _ = writeln!(out, r#"<line x1="{plot_left}" y1="{y}" x2="{}" y2="{y}" stroke="{colour}"/>"#, plot_left + plot_width);
            if label {
                let _ = writeln!(out, r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#, plot_left - 6.0, y + 4.0, number(value));
            }
        }
    }
    let _ = writeln!(out, r##"<rect x="{plot_left}" y="{plot_top}" width="{plot_width}" height="{plot_height}" fill="none" stroke="#333"/>"##);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        plot_left + plot_width / 2.0,
        plot_top + plot_height + 40.0,
        escape(&panel.x_label)
    );
    let (label_x, label_y) = (left + 18.0, plot_top + plot_height / 2.0);
    let _ = writeln!(
        out,
        r#"<text x="{label_x}" y="{label_y}" text-anchor="middle" transform="rotate(-90 {label_x} {label_y})">{}</text>"#,
        escape(&panel.y_label)
    );

    for (index, series) in panel.series.iter().enumerate() {
        let (colour, dash, marker) = STYLES[index % STYLES.len()];
        let placed: Vec<(f64, f64)> = series.points.iter().filter(|&&(x, y)| x > 0.0 && y > 0.0).map(|&(x, y)| (to_x(x), to_y(y))).collect();
        let path: Vec<String> = placed.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let _ = writeln!(out, r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2.5" stroke-dasharray="{dash}"/>"#, path.join(" "));
        for (x, y) in placed {
            draw_marker(out, marker, colour, x, y);
        }
    }
}

fn draw_marker(out: &mut String, marker: Marker, colour: &str, x: f64, y: f64) {
    let _ = match marker {
        Marker::Circle => writeln!(out, r#"<circle cx="{x:.1}" cy="{y:.1}" r="4" fill="{colour}"/>"#),
        Marker::Square => writeln!(out, r#"<rect x="{:.1}" y="{:.1}" width="8" height="8" fill="{colour}"/>"#, x - 4.0, y - 4.0),
        Marker::Diamond => {
            writeln!(out, r#"<polygon points="{x:.1},{:.1} {:.1},{y:.1} {x:.1},{:.1} {:.1},{y:.1}" fill="{colour}"/>"#, y - 5.0, x + 5.0, y + 5.0, x - 5.0)
        }
    };
}

/// The axes' ranges as (log₂ x min, max) and (log₁₀ y min, max): x exactly
/// the data's, y widened to whole decades; `None` without points.
fn ranges(points: impl Iterator<Item = (f64, f64)>) -> Option<((f64, f64), (f64, f64))> {
    let (mut x_min, mut x_max, mut y_min, mut y_max) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in points {
        (x_min, x_max, y_min, y_max) = (x_min.min(x), x_max.max(x), y_min.min(y), y_max.max(y));
    }
    if x_min > x_max {
        return None;
    }
    let mut x_range = (x_min.log2(), x_max.log2());
    if x_range.1 - x_range.0 < 1.0 {
        x_range = (x_range.0 - 0.5, x_range.1 + 0.5);
    }
    let mut y_range = (y_min.log10().floor(), y_max.log10().ceil());
    if y_range.1 <= y_range.0 {
        y_range.1 = y_range.0 + 1.0;
    }
    Some((x_range, y_range))
}

/// A tick's label: no trailing zeros, no exponent.
fn number(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_has_one_line_per_series_and_escapes_its_text() {
        let panel = |title: &str| Panel {
            title: title.into(),
            x_label: "clients".into(),
            y_label: "p95 (ms)".into(),
            series: vec![
                Series { label: "a & b".into(), points: vec![(1.0, 3.0), (2.0, 40.0), (4.0, 900.0)] },
                Series { label: "c".into(), points: vec![(1.0, 0.4), (4.0, 2.0)] },
            ],
        };
        let svg = svg("title <x>", &[panel("left"), panel("right")]);
        assert_eq!(svg.matches("<polyline").count(), 4);
        assert!(svg.contains("a &amp; b") && svg.contains("title &lt;x&gt;"));
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn tick_labels_have_no_trailing_zeros() {
        assert_eq!(number(0.5), "0.5");
        assert_eq!(number(20.0), "20");
        assert_eq!(number(1000.0), "1000");
    }
}
