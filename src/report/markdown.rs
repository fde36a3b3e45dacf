//! GitHub-flavoured Markdown for reports: the one rule for putting any text (a server's
//! message, an object's name, a user's plan name) in a table cell, a list item or a heading, and
//! the one rule for putting it in a code span. Every markdown report escapes through these.

/// ASCII punctuation that inline Markdown gives a meaning to somewhere in a line that is not
/// its start: escapes (`\`), code (`` ` ``), emphasis (`*`, `_`), strikethrough (`~`), links
/// (`[`, `]`), raw HTML and autolinks (`<`, `>`), entities (`&`) and table cells (`|`).
const SPECIAL: &[char] = &['\\', '`', '*', '_', '~', '[', ']', '<', '>', '&', '|'];

/// `s` as literal text in a table cell (also right in a list item or a heading): each
/// character of `SPECIAL` gets a backslash (CommonMark renders `\*` as `*`), and each line
/// break (`\r\n`, `\n`, `\r`) becomes `<br>`, since a table row is one line.
pub fn cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("<br>");
            }
            '\n' => out.push_str("<br>"),
            c if SPECIAL.contains(&c) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// `s` as a code span that is safe in a table cell, backticks included; empty for an empty
/// `s` (an empty code span does not exist in Markdown). Inside a code span backslashes are
/// literal, so only what would break the span or the row changes: the fence is one backtick
/// longer than the longest run of backticks in `s` (padded with a space when `s` starts or ends
/// with one), `|` becomes `\|` (GFM's table parser reads it as a pipe, even in code), and line
/// breaks become spaces (a code span holds no `<br>`).
pub fn code(s: &str) -> String {
    if s.is_empty() {
        return String::new();
    }
    let body = s
        .replace("\r\n", " ")
        .replace(['\n', '\r'], " ")
        .replace('|', "\\|");
    let mut longest = 0;
    let mut run = 0;
    for c in body.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    let fence = "`".repeat(longest + 1);
    let pad = if body.starts_with('`') || body.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{body}{pad}{fence}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_leaves_plain_text_alone() {
        assert_eq!(
            cell("1 table(s) have no primary key: public.notes; fine"),
            "1 table(s) have no primary key: public.notes; fine"
        );
        assert_eq!(cell(""), "");
    }

    #[test]
    fn cell_escapes_hostile_text() {
        // A pipe would end the cell, a newline the row.
        assert_eq!(cell("a|b"), "a\\|b");
        assert_eq!(
            cell("one\ntwo\r\nthree\rfour"),
            "one<br>two<br>three<br>four"
        );
        // A trailing backslash would escape the cell's closing pipe.
        assert_eq!(cell("C:\\"), "C:\\\\");
        assert_eq!(cell("a\\|b"), "a\\\\\\|b");
        // Emphasis, code, HTML, links, entities, strikethrough are shown as typed.
        assert_eq!(cell("SELECT * FROM t*"), "SELECT \\* FROM t\\*");
        assert_eq!(cell("<script>x</script>"), "\\<script\\>x\\</script\\>");
        assert_eq!(cell("`rm -rf`"), "\\`rm -rf\\`");
        assert_eq!(
            cell("_x_ [a](b) ~~s~~ &amp;"),
            "\\_x\\_ \\[a\\](b) \\~\\~s\\~\\~ \\&amp;"
        );
        assert_eq!(cell("wal_level"), "wal\\_level");
        // Nothing else changes: non-ASCII and other punctuation.
        assert_eq!(cell("café: 5% (ok) #1 !"), "café: 5% (ok) #1 !");
    }

    #[test]
    fn cell_output_is_one_line_without_an_unescaped_pipe() {
        let hostile = "|\\\n`*<\r|\\|``";
        let out = cell(hostile);
        assert!(!out.contains('\n') && !out.contains('\r'), "{out}");
        // Every pipe is preceded by an odd number of backslashes.
        let bytes = out.as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            if *b == b'|' {
                let slashes = bytes[..i].iter().rev().take_while(|c| **c == b'\\').count();
                assert_eq!(slashes % 2, 1, "unescaped pipe at {i} in {out}");
            }
        }
    }

    #[test]
    fn code_spans_fence_past_backticks_and_escape_pipes() {
        assert_eq!(code(""), "");
        assert_eq!(code("public.items"), "`public.items`");
        assert_eq!(
            code("postgres://app:********@db/x?a=1"),
            "`postgres://app:********@db/x?a=1`"
        );
        // Backslashes, stars and angle brackets are literal in code.
        assert_eq!(code("a\\b*<c>"), "`a\\b*<c>`");
        assert_eq!(code("a|b"), "`a\\|b`");
        assert_eq!(code("x\ny\r\nz"), "`x y z`");
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("a``b`c"), "```a``b`c```");
        assert_eq!(code("`edge`"), "`` `edge` ``");
    }
}
