//! The table of contents of a directory-format dump, as `pg_restore -l` lists it:
//! `4280; 0 17446 TABLE DATA public p1a postgres`.

/// Object kinds (pg_dump's "desc"), longest first so a prefix never wins.
const KINDS: &[&str] = &[
    "MATERIALIZED VIEW DATA",
    "DEFAULT ACL",
    "EVENT TRIGGER",
    "FK CONSTRAINT",
    "FOREIGN TABLE",
    "FOREIGN DATA WRAPPER",
    "FOREIGN SERVER",
    "INDEX ATTACH",
    "LARGE OBJECT",
    "MATERIALIZED VIEW",
    "OPERATOR CLASS",
    "OPERATOR FAMILY",
    "PROCEDURAL LANGUAGE",
    "PUBLICATION TABLES IN SCHEMA",
    "PUBLICATION TABLE",
    "ROW SECURITY",
    "SEQUENCE OWNED BY",
    "SEQUENCE SET",
    "STATISTICS DATA",
    "TABLE ATTACH",
    "TABLE DATA",
    "TEXT SEARCH CONFIGURATION",
    "TEXT SEARCH DICTIONARY",
    "TEXT SEARCH PARSER",
    "TEXT SEARCH TEMPLATE",
    "USER MAPPING",
    "ACCESS METHOD",
    "BLOB METADATA",
    "BLOBS",
    "BLOB",
    "ACL",
    "AGGREGATE",
    "CAST",
    "CHECK CONSTRAINT",
    "COLLATION",
    "COMMENT",
    "CONSTRAINT",
    "CONVERSION",
    "DATABASE PROPERTIES",
    "DATABASE",
    "DEFAULT",
    "DOMAIN",
    "ENCODING",
    "EXTENSION",
    "FUNCTION",
    "INDEX",
    "OPERATOR",
    "POLICY",
    "PROCEDURE",
    "PUBLICATION",
    "RULE",
    "SCHEMA",
    "SEARCHPATH",
    "SECURITY LABEL",
    "SEQUENCE",
    "SERVER",
    "STDSTRINGS",
    "SUBSCRIPTION",
    "TABLE",
    "TRANSFORM",
    "TRIGGER",
    "TYPE",
    "VIEW",
];

/// One TOC entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub dump_id: i32,
    pub kind: String,
    /// `-` when the object has no schema.
    pub schema: String,
    pub tag: String,
    pub owner: String,
    /// The line as listed, for `pg_restore -L`.
    pub line: String,
}

impl Entry {
    /// `schema.tag` or the tag alone, for messages.
    pub fn object(&self) -> String {
        if self.schema == "-" || self.schema.is_empty() {
            format!("{} {}", self.kind, self.tag)
        } else {
            format!("{} {}.{}", self.kind, self.schema, self.tag)
        }
    }
}

/// Parses the listing; comment and blank lines are skipped. A line that does not parse is
/// returned as an error with its text.
pub fn parse(listing: &str) -> Result<Vec<Entry>, String> {
    parse_with(listing, &[])
}

/// As [`parse`], knowing schema names listed elsewhere (another section's SCHEMA entries).
pub fn parse_with(listing: &str, known_schemas: &[String]) -> Result<Vec<Entry>, String> {
    let lines: Vec<&str> = listing
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|t| !t.trim().is_empty() && !t.starts_with(';'))
        .collect();
    // Schema names may hold spaces, which makes "schema tag" ambiguous: learn the names from
    // the SCHEMA entries first, then take the longest one that fits.
    let mut schemas: Vec<String> = vec!["public".to_string(), "pg_catalog".to_string()];
    schemas.extend(known_schemas.iter().cloned());
    for t in &lines {
        if let Some(e) = parse_line(t, &[]) {
            if e.kind == "SCHEMA" {
                schemas.push(e.tag.clone());
            }
        }
    }
    schemas.sort_by_key(|s| std::cmp::Reverse(s.len()));
    lines
        .iter()
        .map(|t| parse_line(t, &schemas).ok_or_else(|| t.to_string()))
        .collect()
}

fn parse_line(line: &str, schemas: &[String]) -> Option<Entry> {
    let (id, rest) = line.split_once(';')?;
    let dump_id = id.trim().parse().ok()?;
    let rest = rest.strip_prefix(' ')?;
    // catalog oid, object oid
    let mut parts = rest.splitn(3, ' ');
    parts.next()?;
    parts.next()?;
    let rest = parts.next()?;
    let kind = KINDS
        .iter()
        .find(|k| rest.starts_with(*k) && rest[k.len()..].starts_with(' '))?;
    let rest = &rest[kind.len() + 1..];
    let known = schemas
        .iter()
        .find(|s| rest.starts_with(s.as_str()) && rest[s.len()..].starts_with(' '));
    let (schema, rest) = match known {
        Some(s) => (s.as_str(), &rest[s.len() + 1..]),
        None => rest.split_once(' ')?,
    };
    let (tag, owner) = rest.rsplit_once(' ')?;
    Some(Entry {
        dump_id,
        kind: kind.to_string(),
        schema: schema.to_string(),
        tag: tag.to_string(),
        owner: owner.to_string(),
        line: line.to_string(),
    })
}

/// Which restore phase an entry belongs to, as pg_restore's sections split them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Wave {
    /// Indexes and primary/unique constraints: independent of each other, built in parallel.
    Indexes,
    /// Partition index attachments, in listing order.
    Attach,
    /// Foreign keys, one at a time (each locks two tables).
    ForeignKeys,
    /// Everything else (triggers, rules, policies, comments, materialized view data), in order.
    Rest,
}

pub fn wave(kind: &str) -> Wave {
    match kind {
        "INDEX" | "CONSTRAINT" => Wave::Indexes,
        "INDEX ATTACH" => Wave::Attach,
        "FK CONSTRAINT" => Wave::ForeignKeys,
        _ => Wave::Rest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = ";\n; Archive created at 2026-11-26\n;\n\
7; 2615 17428 SCHEMA - sales postgres\n\
2; 3079 16384 EXTENSION - postgis \n\
4293; 0 0 COMMENT - EXTENSION postgis \n\
221; 1259 17429 TABLE sales t postgres\n\
226; 1259 17463 MATERIALIZED VIEW public mv postgres\n\
4294; 0 0 COMMENT public TABLE p postgres\n\
4110; 0 0 TABLE ATTACH public p1 postgres\n\
4284; 2613 17462 BLOB - 17462 postgres\n\
4280; 0 17446 TABLE DATA public p1a postgres\n\
4295; 0 0 SEQUENCE SET public s1 postgres\n\
4285; 0 0 BLOBS - BLOBS \n\
4119; 2606 17440 CONSTRAINT public p p_pkey postgres\n\
4126; 0 0 INDEX ATTACH public p1_k_idx postgres\n\
4130; 2606 17457 FK CONSTRAINT public r r_id_fkey postgres\n\
4282; 0 17463 MATERIALIZED VIEW DATA public mv postgres\n\
4300; 1259 17500 TABLE public My Table postgres\n\
8; 2615 17429 SCHEMA - Mixed Case postgres\n\
4357; 0 17600 PUBLICATION TABLE Mixed Case pgmove_demo Weird \"Name\" postgres\n";

    #[test]
    fn parses_every_kind_of_line() {
        let e = parse(LISTING).expect("parses");
        assert_eq!(e.len(), 18);
        assert_eq!(e[17].schema, "Mixed Case");
        assert_eq!(e[17].tag, "pgmove_demo Weird \"Name\"");
        assert_eq!(e[0].kind, "SCHEMA");
        assert_eq!(e[0].tag, "sales");
        assert_eq!(e[1].kind, "EXTENSION");
        assert_eq!(e[1].owner, "");
        assert_eq!(e[2].kind, "COMMENT");
        assert_eq!(e[2].tag, "EXTENSION postgis");
        assert_eq!(e[4].kind, "MATERIALIZED VIEW");
        assert_eq!(e[8].kind, "TABLE DATA");
        assert_eq!(e[8].object(), "TABLE DATA public.p1a");
        assert_eq!(e[11].tag, "p p_pkey");
        assert_eq!(e[12].kind, "INDEX ATTACH");
        assert_eq!(e[13].kind, "FK CONSTRAINT");
        assert_eq!(e[14].kind, "MATERIALIZED VIEW DATA");
        assert_eq!(e[15].tag, "My Table");
        assert_eq!(e[10].kind, "BLOBS");
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        assert!(parse("12; nonsense").is_err());
        assert!(parse("x; 0 0 TABLE public t o").is_err());
    }

    #[test]
    fn waves_order_post_data() {
        assert_eq!(wave("INDEX"), Wave::Indexes);
        assert_eq!(wave("CONSTRAINT"), Wave::Indexes);
        assert_eq!(wave("INDEX ATTACH"), Wave::Attach);
        assert_eq!(wave("FK CONSTRAINT"), Wave::ForeignKeys);
        assert_eq!(wave("TRIGGER"), Wave::Rest);
        assert!(Wave::Indexes < Wave::Rest);
    }
}
