//! What the report commands (`validate`, `health`, `history`, `audit-verify`) share: loading
//! the configuration without taking the run lock, and printing the report — one JSON
//! document when asked for (`--format json`) or when stdout is not a terminal, a readable
//! table on a terminal (DESIGN.md, "Fine points"). Their log lines go to stderr; stdout holds
//! only the report.

use crate::cli::{Format, GlobalArgs};
use crate::config::{self, Endpoint, Environment, IcsLocation, Pair, Settings};
use crate::error::Error;
use crate::net::endpoint_of;
use std::io::{IsTerminal, Write};

/// Reads the configuration and the pairs `--pair` selects.
///
/// # Errors
/// Config (78) or an unknown pair (64).
pub fn load(global: &GlobalArgs) -> Result<(Settings, Vec<String>), Error> {
    let settings = config::load(
        &global.config,
        global.state.as_deref(),
        &Environment::from_process(),
    )?;
    let selected = settings
        .select_pairs(&global.pairs)
        .map_err(Error::Usage)?
        .into_iter()
        .map(|p| p.name.clone())
        .collect();
    Ok((settings, selected))
}

/// The pair of that name (one `select_pairs` returned).
pub fn pair<'a>(settings: &'a Settings, name: &str) -> &'a Pair {
    settings
        .pairs
        .iter()
        .find(|p| p.name == name)
        .expect("selected pairs exist")
}

/// The remote endpoints (`scheme://host:port`, as the breaker and the API metrics name
/// them) a pair's providers call, by what its configuration says.
pub fn endpoints_of(pair: &Pair) -> Vec<String> {
    let mut urls: Vec<&str> = Vec::new();
    for side in [&pair.source, &pair.target] {
        match side {
            Endpoint::Graph(g) => urls.extend([g.base_url.as_str(), g.token_url.as_str()]),
            Endpoint::Google(g) => {
                urls.push(&g.base_url);
                urls.extend(g.token_url.as_deref());
            }
            Endpoint::Caldav(c) => urls.push(&c.url),
            Endpoint::Ics(i) => {
                if let IcsLocation::Url(u) = &i.location {
                    urls.push(u.expose());
                }
            }
        }
    }
    let mut endpoints: Vec<String> = urls.into_iter().map(endpoint_of).collect();
    endpoints.sort();
    endpoints.dedup();
    endpoints
}

/// Whether the report is JSON: asked for, or stdout is not a terminal.
pub fn wants_json(format: Option<Format>) -> bool {
    match format {
        Some(Format::Json) => true,
        Some(Format::Text) => false,
        None => !std::io::stdout().is_terminal(),
    }
}

/// Writes the report on stdout: the JSON document, or the text.
pub fn print(json: bool, document: &serde_json::Value, text: impl FnOnce() -> String) {
    let out = if json {
        let mut s = serde_json::to_string_pretty(document).expect("JSON values serialise");
        s.push('\n');
        s
    } else {
        text()
    };
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
}

/// A plain text table: a header row, a rule, and left-aligned columns.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, each line ending in a newline; trailing blanks trimmed.
    pub fn render(&self) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = cells.get(i).map(String::as_str).unwrap_or("");
                s.push_str(cell);
                if i + 1 < columns {
                    s.push_str(&" ".repeat(width - cell.chars().count() + 2));
                }
            }
            let mut s = s.trim_end().to_string();
            s.push('\n');
            s
        };
        let mut out = line(&self.headers);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        out.push_str(&line(&rule));
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out
    }
}

/// A duration in milliseconds as people read it: `850ms`, `4.2s`, `3m05s`, `2h10m`.
pub fn human_ms(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, (ms % 3_600_000) / 60_000)
    }
}

/// Unix milliseconds as RFC 3339 UTC (seconds).
pub fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_aligns_its_columns() {
        let mut t = Table::new(&["CHECK", "STATUS"]);
        t.row(vec!["config".into(), "pass".into()]);
        t.row(vec!["parish:lastGoodSync".into(), "warn".into()]);
        assert_eq!(
            t.render(),
            "CHECK                STATUS\n\
             -------------------  ------\n\
             config               pass\n\
             parish:lastGoodSync  warn\n"
        );
    }

    #[test]
    fn durations_read_as_people_read_them() {
        let cases = [
            (850, "850ms"),
            (4_200, "4.2s"),
            (185_000, "3m05s"),
            (7_800_000, "2h10m"),
            (-5, "0ms"),
        ];
        for (ms, want) in cases {
            assert_eq!(human_ms(ms), want);
        }
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00Z");
    }
}
