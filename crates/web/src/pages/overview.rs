//! `/admin`: the administrators' overview, with its charts drawn here as
//! SVG (no script; styled by classes in the static stylesheet, so the
//! strict CSP stays).

use std::fmt::Write as _;

use askama::Template;
use portcullis_app::overview::{Day, Report};

use crate::context::RequestCtx;

/// One chart: a title, an id, and a value per day.
pub struct Chart {
    /// Heading and accessible name.
    pub title: &'static str,
    /// Element id stem (`chart-sign-ins`).
    pub id: &'static str,
    /// The SVG, escaped already.
    pub svg: String,
    /// (date `YYYY-MM-DD`, value), oldest first.
    pub rows: Vec<(String, i64)>,
    /// Sum of the values.
    pub total: i64,
}

/// `/admin`.
#[derive(Template)]
#[template(path = "admin_overview.html")]
pub struct AdminOverview<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// The numbers.
    pub report: &'a Report,
    /// Sign-ins, failures and lockouts.
    pub charts: Vec<Chart>,
    /// Age of the oldest pending mail, in words, if any.
    pub oldest_mail: Option<String>,
}

/// Chart geometry (viewBox units).
const W: i64 = 600;
const H: i64 = 160;
const PAD: i64 = 20;

/// The charts of `days`.
pub fn charts(days: &[Day]) -> Vec<Chart> {
    vec![
        chart("Sign-ins", "sign-ins", days, |d| d.sign_ins),
        chart("Failed sign-ins", "failures", days, |d| d.failures),
        chart("Lockouts", "lockouts", days, |d| d.lockouts),
    ]
}

fn chart(title: &'static str, id: &'static str, days: &[Day], value: fn(&Day) -> i64) -> Chart {
    let rows: Vec<(String, i64)> = days.iter().map(|d| (super::time_tag::date(d.start_ms), value(d))).collect();
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
    let n = i64::try_from(rows.len()).unwrap_or(1).max(1);
    let slot = (W - 2 * PAD) / n;
    let mut svg = format!(
        "<svg class=\"chart chart-{id}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-labelledby=\"chart-{id}-title\" \
         focusable=\"false\"><title id=\"chart-{id}-title\">{title}, last {n} days (peak {max})</title>\
         <line class=\"axis\" x1=\"{PAD}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\"></line>",
        y = H - PAD,
        x2 = W - PAD
    );
    for (i, (day, v)) in rows.iter().enumerate() {
        let i = i64::try_from(i).unwrap_or(0);
        let h = (H - 2 * PAD) * v / max;
        let x = PAD + i * slot + 1;
        let y = H - PAD - h;
        let _ = write!(
            svg,
            "<rect class=\"bar\" x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\"><title>{day}: {v}</title></rect>",
            w = (slot - 2).max(1)
        );
    }
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        let _ = write!(
            svg,
            "<text class=\"label\" x=\"{PAD}\" y=\"{H}\">{}</text>\
             <text class=\"label end\" x=\"{x}\" y=\"{H}\" text-anchor=\"end\">{}</text>\
             <text class=\"label\" x=\"{PAD}\" y=\"12\">{max}</text>",
            first.0,
            last.0,
            x = W - PAD
        );
    }
    svg.push_str("</svg>");
    let total = rows.iter().map(|r| r.1).sum();
    Chart { title, id, svg, rows, total }
}

/// A short age: `45 s`, `12 min`, `3 h`, `2 d`.
pub fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_peak_and_carry_their_value() {
        let days: Vec<Day> =
            (0..30).map(|i| Day { start_ms: i * 86_400_000, sign_ins: i % 3, ..Day::default() }).collect();
        let c = chart("Sign-ins", "sign-ins", &days, |d| d.sign_ins);
        assert_eq!(c.svg.matches("<rect class=\"bar\"").count(), 30);
        assert!(c.svg.contains("1970-01-03: 2</title>"));
        assert!(!c.svg.contains("style"), "no inline style under the CSP");
        assert_eq!(c.total, (0..30).map(|i| i % 3).sum::<i64>());
        assert_eq!(age(125_000), "2 min");
    }
}
