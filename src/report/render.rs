//! One way to print any report: a report knows its text, Markdown and JSON forms ([`Render`]);
//! commands print it in the format the user asked for with [`print`].

use std::io::Write as _;

use serde::Serialize;

use super::Format;

/// The version of every JSON document pgmove prints (`--format json`), the first field of its
/// top-level object (docs/json.md). Fields are only ever added within a version; a field
/// removed, renamed or changing meaning raises it.
pub const SCHEMA_VERSION: u32 = 1;

/// A report with [`SCHEMA_VERSION`] first, then its own fields in their order.
#[derive(Serialize)]
struct Stamped<'a, T: ?Sized> {
    schema_version: u32,
    #[serde(flatten)]
    report: &'a T,
}

/// `report` as JSON with `schema_version` first (`pretty`: indented); a report that is not a
/// JSON object (none is) as it is.
pub fn to_json<T: Serialize + ?Sized>(report: &T, pretty: bool) -> String {
    let stamped = Stamped {
        schema_version: SCHEMA_VERSION,
        report,
    };
    let out = if pretty {
        serde_json::to_string_pretty(&stamped)
    } else {
        serde_json::to_string(&stamped)
    };
    out.or_else(|_| {
        if pretty {
            serde_json::to_string_pretty(report)
        } else {
            serde_json::to_string(report)
        }
    })
    .unwrap_or_else(|e| {
        serde_json::json!({ "schema_version": SCHEMA_VERSION, "error": e.to_string() }).to_string()
    })
}

/// A report in the three forms of `--format`: text for people, Markdown for tickets, JSON for
/// scripts (serde: fields are only ever added).
pub trait Render: Serialize {
    /// For a terminal or a log.
    fn render_text(&self) -> String;

    /// The text with ANSI colors, for a terminal that takes them; the plain text unless the
    /// report paints.
    fn render_text_in_color(&self) -> String {
        self.render_text()
    }

    /// GitHub-flavoured Markdown; data goes through [`super::markdown`].
    fn render_markdown(&self) -> String;

    /// Pretty JSON with `schema_version` first, without a final newline.
    fn render_json(&self) -> String {
        to_json(self, true)
    }

    /// Exactly what [`print()`] writes: the report in `format` (`color` paints text), ending
    /// with a newline.
    fn render(&self, format: Format, color: bool) -> String {
        match format {
            Format::Text if color => self.render_text_in_color(),
            Format::Text => self.render_text(),
            // Only `pgmove report` has an HTML form; the command line refuses `--format html`
            // for the others before they run, so this is not reached from it.
            Format::Markdown | Format::Html => self.render_markdown(),
            Format::Json => self.render_json() + "\n",
        }
    }
}

/// Where a report goes: stdout, or stderr when stdout is not for it (a JSON result follows, or
/// it explains a failure).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum To {
    Stdout,
    Stderr,
}

/// Prints `report` in `format` to `to` (`color`: ANSI colors in text, for a terminal). A closed
/// pipe (`pgmove status | head -1`) is not an error.
pub fn print<R: Render + ?Sized>(report: &R, format: Format, color: bool, to: To) {
    let out = report.render(format, color);
    let _ = match to {
        To::Stdout => {
            let mut s = std::io::stdout().lock();
            s.write_all(out.as_bytes()).and_then(|_| s.flush())
        }
        To::Stderr => std::io::stderr().lock().write_all(out.as_bytes()),
    };
}

/// A command's result that has no layout of its own (what `apply` did, the statements
/// `apply --dry-run` would run): its text, printed as it is for text and Markdown, and a JSON
/// value, printed compact on one line.
#[derive(Clone, Debug)]
pub struct Summary {
    text: String,
    json: serde_json::Value,
}

impl Summary {
    /// `text` as printed (each line ends with a newline); `json` for `--format json`.
    pub fn new(text: impl Into<String>, json: serde_json::Value) -> Summary {
        Summary {
            text: text.into(),
            json,
        }
    }

    /// A summary of one line of text (a newline is added).
    pub fn line(line: impl std::fmt::Display, json: serde_json::Value) -> Summary {
        Summary::new(format!("{line}\n"), json)
    }
}

impl Serialize for Summary {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(s)
    }
}

impl Render for Summary {
    fn render_text(&self) -> String {
        self.text.clone()
    }

    fn render_markdown(&self) -> String {
        self.text.clone()
    }

    fn render_json(&self) -> String {
        to_json(&self.json, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Sample {
        name: &'static str,
    }

    impl Render for Sample {
        fn render_text(&self) -> String {
            format!("sample {}\n", self.name)
        }
        fn render_text_in_color(&self) -> String {
            format!("\x1b[1msample\x1b[0m {}\n", self.name)
        }
        fn render_markdown(&self) -> String {
            format!("# sample `{}`\n", self.name)
        }
    }

    #[test]
    fn each_format_renders_its_form() {
        let s = Sample { name: "x" };
        assert_eq!(s.render(Format::Text, false), "sample x\n");
        assert_eq!(s.render(Format::Text, true), "\x1b[1msample\x1b[0m x\n");
        assert_eq!(s.render(Format::Markdown, true), "# sample `x`\n");
        assert_eq!(
            s.render(Format::Json, true),
            "{\n  \"schema_version\": 1,\n  \"name\": \"x\"\n}\n"
        );
        assert_eq!(
            s.render_json(),
            "{\n  \"schema_version\": 1,\n  \"name\": \"x\"\n}"
        );
    }

    #[test]
    fn a_summary_is_its_text_or_one_line_of_json() {
        let s = Summary::line(
            "applied plan p",
            serde_json::json!({ "plan": "p", "elapsed_secs": 1.5 }),
        );
        assert_eq!(s.render(Format::Text, true), "applied plan p\n");
        assert_eq!(s.render(Format::Markdown, false), "applied plan p\n");
        assert_eq!(
            s.render(Format::Json, false),
            "{\"schema_version\":1,\"elapsed_secs\":1.5,\"plan\":\"p\"}\n"
        );
        // Not an object: nothing to stamp, printed as it is.
        let list = Summary::new("", serde_json::json!([1, 2]));
        assert_eq!(list.render(Format::Json, false), "[1,2]\n");
        let empty = Summary::new("", serde_json::json!({ "statements": [] }));
        assert_eq!(empty.render(Format::Text, false), "");
    }
}
