//! Charts as inline SVG, drawn here: a time axis, a value axis from zero, and series as
//! lines or bars. Colours come from CSS classes (`series-N`), so the pages need no inline
//! style.

use crate::format;
use chrono::{DateTime, Utc};
use maud::{html, Markup};

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 200.0;
/// Room for the value labels on the left, the time labels below.
const LEFT: f64 = 52.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Line,
    Bar,
}

/// One series: a value (or none) per bucket.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    pub(crate) values: Vec<Option<f64>>,
}

/// A chart's title, unit, and series over `times` (the starts of the buckets).
#[derive(Debug, Clone)]
pub(crate) struct Chart<'a> {
    pub(crate) title: &'static str,
    pub(crate) unit: Unit,
    pub(crate) times: &'a [DateTime<Utc>],
    pub(crate) series: Vec<Series>,
}

/// What the values count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Millis,
    Count,
}

impl Unit {
    fn label(self, value: f64) -> String {
        match self {
            Unit::Millis => format::ms(value.round() as u64),
            Unit::Count if value.fract() == 0.0 => format!("{value:.0}"),
            Unit::Count => format!("{value:.1}"),
        }
    }
}

/// The smallest "nice" number (1, 2 or 5 times a power of ten) at or above `value`.
fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|n| *n >= value)
        .unwrap_or(10.0 * magnitude)
}

impl Chart<'_> {
    /// The chart as an `<svg>` element with a title and a legend.
    pub(crate) fn render(&self) -> Markup {
        let count = self.times.len().max(1);
        let max = self
            .series
            .iter()
            .flat_map(|s| s.values.iter().flatten())
            .fold(0.0f64, |a, b| a.max(*b));
        // Four steps of a nice size; whole counts and whole milliseconds at least.
        let step = nice_ceiling(max / 4.0).max(1.0);
        let top = step * 4.0;
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let slot = plot_w / count as f64;
        let x = |i: usize| LEFT + slot * (i as f64 + 0.5);
        let y = |v: f64| TOP + plot_h - (v / top) * plot_h;
        let bars: Vec<&Series> = self.series.iter().filter(|s| s.kind == Kind::Bar).collect();
        let bar_w = (slot * 0.8 / bars.len().max(1) as f64).max(1.0);
        let ticks = [0.0, 0.25, 0.5, 0.75, 1.0];
        let anchor = |i: usize| match i {
            0 => "start",
            i if i + 1 == count => "end",
            _ => "middle",
        };
        let labelled: Vec<usize> = if count <= 1 {
            vec![0]
        } else {
            vec![0, count / 2, count - 1]
        };
        let has_data = self
            .series
            .iter()
            .any(|s| s.values.iter().any(Option::is_some));
        html! {
            figure.chart {
                figcaption { (self.title) }
                svg viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(self.title) {
                    @for t in ticks {
                        line.grid x1=(LEFT) x2=(WIDTH - RIGHT) y1=(y(top * t)) y2=(y(top * t)) {}
                        text.axis x=(LEFT - 4.0) y=(y(top * t) + 4.0) text-anchor="end" { (self.unit.label(top * t)) }
                    }
                    @for i in &labelled {
                        @if let Some(t) = self.times.get(*i) {
                            text.axis x=(x(*i)) y=(HEIGHT - 6.0) text-anchor=(anchor(*i)) { (format::clock(t)) }
                        }
                    }
                    @for (n, series) in self.series.iter().enumerate() {
                        @if series.kind == Kind::Bar {
                            @let offset = bars.iter().position(|b| b.name == series.name).unwrap_or(0) as f64;
                            @for (i, value) in series.values.iter().enumerate() {
                                @if let Some(v) = value.filter(|v| *v > 0.0) {
                                    rect class=(format!("series-{n}"))
                                        x=(x(i) - slot * 0.4 + offset * bar_w) y=(y(v))
                                        width=(bar_w) height=(TOP + plot_h - y(v)) {
                                        title { (series.name) ": " (self.unit.label(v)) }
                                    }
                                }
                            }
                        } @else {
                            path class=(format!("line series-{n}")) d=(line_path(&series.values, x, y)) {}
                            @for (i, value) in series.values.iter().enumerate() {
                                @if let Some(v) = value {
                                    circle class=(format!("series-{n}")) cx=(x(i)) cy=(y(*v)) r="2" {
                                        title { (series.name) ": " (self.unit.label(*v)) }
                                    }
                                }
                            }
                        }
                    }
                    @if !has_data {
                        text.empty x=(LEFT + plot_w / 2.0) y=(TOP + plot_h / 2.0) text-anchor="middle" { "no calls in this window" }
                    }
                }
                ul.legend {
                    @for (n, series) in self.series.iter().enumerate() {
                        li { span class=(format!("swatch series-{n}")) {} (series.name) }
                    }
                }
            }
        }
    }
}

/// An SVG path through the present values; a gap (no value) lifts the pen.
fn line_path(values: &[Option<f64>], x: impl Fn(usize) -> f64, y: impl Fn(f64) -> f64) -> String {
    let mut d = String::new();
    let mut pen_down = false;
    for (i, value) in values.iter().enumerate() {
        match value {
            Some(v) => {
                d.push_str(&format!(
                    "{}{:.1},{:.1} ",
                    if pen_down { "L" } else { "M" },
                    x(i),
                    y(*v)
                ));
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_nice_numbers() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.0), 5.0);
        assert_eq!(nice_ceiling(12.0), 20.0);
        assert_eq!(nice_ceiling(950.0), 1000.0);
        assert_eq!(nice_ceiling(0.3), 0.5);
        assert_eq!(nice_ceiling(219.0), 250.0);
    }

    #[test]
    fn lines_lift_the_pen_over_gaps() {
        let d = line_path(
            &[Some(1.0), None, Some(2.0), Some(3.0)],
            |i| i as f64,
            |v| v,
        );
        assert_eq!(d, "M0.0,1.0 M2.0,2.0 L3.0,3.0 ");
    }

    #[test]
    fn a_chart_draws_its_series() {
        let times: Vec<DateTime<Utc>> = (0..3)
            .map(|i| DateTime::from_timestamp(i * 60, 0).unwrap_or_default())
            .collect();
        let chart = Chart {
            title: "Throughput",
            unit: Unit::Count,
            times: &times,
            series: vec![
                Series {
                    name: "calls",
                    kind: Kind::Bar,
                    values: vec![Some(1.0), Some(4.0), None],
                },
                Series {
                    name: "p50",
                    kind: Kind::Line,
                    values: vec![Some(1.0), None, Some(2.0)],
                },
            ],
        }
        .render()
        .into_string();
        assert_eq!(chart.matches("<rect").count(), 2, "{chart}");
        assert!(chart.contains("<title>calls: 4</title>"), "{chart}");
        assert!(chart.contains("class=\"line series-1\""), "{chart}");
        assert!(chart.contains("<figcaption>Throughput</figcaption>"));
        assert!(!chart.contains("no calls in this window"));
    }
}
