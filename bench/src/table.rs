//! Markdown output, so that every table can be pasted into the README as printed.

use std::time::Duration;

/// Prints a table's title and the sentence that says what it measures.
pub fn heading(title: &str, about: &str) {
    println!("\n### {title}\n\n{about}\n");
}

/// Prints the header of a table whose first column is text and the others numbers.
pub fn header(columns: &[&str]) {
    println!("| {} |", columns.join(" | "));
    let alignments: Vec<&str> = (0..columns.len()).map(|column| if column == 0 { "---" } else { "---:" }).collect();
    println!("|{}|", alignments.join("|"));
}

pub fn row(cells: &[String]) {
    println!("| {} |", cells.join(" | "));
}

/// A note below a table, in italics.
pub fn note(text: &str) {
    println!("\n_{text}_");
}

/// Under a load table: what went wrong during it, a line each, or that nothing did.
pub fn load_failures(lines: &[String]) {
    if lines.is_empty() {
        note("Every upload was answered 2xx and every `/healthz` read 200.");
    } else {
        println!();
        for line in lines {
            println!("- {line}");
        }
    }
}

/// What a cell shows when its side could not be measured.
pub const MISSING: &str = "–";

pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Milliseconds with a precision that suits their size; "—" when there is nothing to show.
pub fn ms_cell(duration: Option<Duration>) -> String {
    match duration.map(ms) {
        None => "—".into(),
        Some(ms) if ms < 10.0 => format!("{ms:.2}"),
        Some(ms) if ms < 100.0 => format!("{ms:.1}"),
        Some(ms) => format!("{ms:.0}"),
    }
}

/// `theirs / ours`: above 1 when ours is faster.
pub fn speed_up(theirs: Duration, ours: Duration) -> String {
    format!("{:.2}×", theirs.as_secs_f64() / ours.as_secs_f64())
}

/// The median of some timings; `times` must not be empty.
pub fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}
