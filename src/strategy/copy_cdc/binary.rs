//! Which columns the load may move in COPY's binary format, for a given pair of majors.
//!
//! Binary COPY skips the text output and input functions, but a binary value is only right
//! on the target when the target's receive function reads what the source's send function
//! wrote, and when the value means the same thing on both servers:
//! - `reg*` types (`regclass`, `regtype`, `regproc`...) send the OID, which on the target
//!   names another object or none; as text they travel as schema-qualified names, which is
//!   what pg_dump does, so they always go as text.
//! - Types without binary input/output (`aclitem`) can only go as text.
//! - Between two different majors, only the types whose binary form is documented and
//!   unchanged from PostgreSQL 10 to 18 go binary ([`STABLE_ACROSS_MAJORS`]); every other
//!   built-in type goes as text, read by the target's input function, which accepts every
//!   older text form.
//!
//! `tests/it/version_values.rs` runs the load across majors on real servers (10 -> 15 and
//! 15 -> 18): a table of every type in [`STABLE_ACROSS_MAJORS`] (with extremes) goes binary
//! and arrives bit for bit; tables with any other type go as text, and arrive exactly too.

/// Built-in types (by `pg_type.typname`) whose send/receive format is the same on every
/// major from 10 to 18. `numeric` gained ±Infinity in 14 with a format older servers' values
/// never use, so an older source's values read the same on a newer target; `money` is its
/// 64-bit integer (no locale in the binary form).
const STABLE_ACROSS_MAJORS: &[&str] = &[
    "bool",
    "bytea",
    "char",
    "name",
    "int2",
    "int4",
    "int8",
    "oid",
    "text",
    "varchar",
    "bpchar",
    "float4",
    "float8",
    "numeric",
    "money",
    "date",
    "time",
    "timetz",
    "timestamp",
    "timestamptz",
    "interval",
    "uuid",
    "json",
    "jsonb",
    "inet",
    "cidr",
    "macaddr",
    "bit",
    "varbit",
];

/// Types whose value is the OID of a catalog object: as binary the OID travels, not the
/// object's name.
const OID_NAMED: &[&str] = &[
    "regclass",
    "regtype",
    "regproc",
    "regprocedure",
    "regoper",
    "regoperator",
    "regconfig",
    "regdictionary",
    "regnamespace",
    "regrole",
    "regcollation",
];

/// Built-in types with no binary send/receive functions.
const NO_BINARY_IO: &[&str] = &["aclitem"];

/// Whether a built-in type (`pg_type.typname`, looked through domains and arrays) may be
/// copied in binary from a `source_major` server into a `target_major` one.
pub fn binary_ok(type_name: &str, source_major: u32, target_major: u32) -> bool {
    if OID_NAMED.contains(&type_name) || NO_BINARY_IO.contains(&type_name) {
        return false;
    }
    if source_major == target_major {
        return true;
    }
    // An older target is refused by preflight; here it only means "not known to be safe".
    target_major > source_major && STABLE_ACROSS_MAJORS.contains(&type_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reg_types_and_types_without_binary_io_always_go_as_text() {
        for t in ["regclass", "regtype", "regproc", "regrole", "aclitem"] {
            assert!(!binary_ok(t, 15, 15), "{t}");
            assert!(!binary_ok(t, 10, 15), "{t}");
        }
    }

    #[test]
    fn the_same_major_copies_every_other_built_in_type_in_binary() {
        for t in [
            "float8",
            "money",
            "tsvector",
            "point",
            "int4range",
            "xml",
            "pg_lsn",
        ] {
            assert!(binary_ok(t, 15, 15), "{t}");
        }
    }

    #[test]
    fn across_majors_only_stable_formats_go_binary() {
        for t in [
            "float8",
            "numeric",
            "timestamptz",
            "interval",
            "jsonb",
            "money",
            "bytea",
        ] {
            assert!(binary_ok(t, 10, 15), "{t}");
            assert!(binary_ok(t, 15, 18), "{t}");
        }
        for t in [
            "tsvector",
            "point",
            "int4range",
            "xml",
            "pg_lsn",
            "jsonpath",
        ] {
            assert!(!binary_ok(t, 10, 15), "{t}");
            assert!(!binary_ok(t, 15, 18), "{t}");
        }
        assert!(!binary_ok("float8", 16, 15), "never into an older major");
    }
}
