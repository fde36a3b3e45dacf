//! Version rules: what each pair of PostgreSQL majors allows, as pure functions of
//! `server_version_num` (the planner, preflight, the plan report and change capture ask here).
//!
//! - The target must be at least the source's major: pg_restore of a newer pg_dump's archive
//!   and logical replication into an older major are unsupported (catalogs and types differ).
//! - copy-cdc decodes with pgoutput: a source of PostgreSQL 10 or newer. Streaming of large
//!   in-progress transactions (pgoutput protocol version 2) needs a 14+ source;
//!   `publish_via_partition_root` and partitioned tables in a publication need 13+: before,
//!   copy-cdc publishes the leaf partitions one by one ([`partition_publishing`]).

use serde::Serialize;

/// The oldest source pgoutput decodes: PostgreSQL 10.
pub const PGOUTPUT_MIN: i32 = 100_000;
/// The oldest source that streams in-progress transactions (pgoutput protocol version 2).
pub const STREAMING_MIN: i32 = 140_000;
/// The oldest source that takes partitioned tables in a publication and
/// `publish_via_partition_root`.
pub const PARTITION_ROOT_MIN: i32 = 130_000;

/// The oldest source whose pgoutput sends logical decoding messages (`messages 'true'`): the
/// DDL trigger's messages (`cdc.ddl`) reach the applier only from a 14+ source.
pub const MESSAGES_MIN: i32 = 140_000;

/// Whether pgoutput on a source of `source` sends logical decoding messages (and accepts the
/// `messages` option of `START_REPLICATION`).
pub fn logical_messages(source: i32) -> bool {
    source >= MESSAGES_MIN
}

/// The major of a `server_version_num` as a comparable number: 906 for 9.6.x (before 10 the
/// major has two parts), 1500 for 15.x.
pub fn major_key(version_num: i32) -> i32 {
    if version_num >= 100_000 {
        version_num / 10_000 * 100
    } else {
        version_num / 100
    }
}

/// The major as people write it: `9.6`, `15`.
pub fn major_label(version_num: i32) -> String {
    if version_num >= 100_000 {
        (version_num / 10_000).to_string()
    } else {
        format!("{}.{}", version_num / 10_000, version_num / 100 % 100)
    }
}

/// Why the pair cannot move at all (the target's major is older than the source's), or `None`.
pub fn pair_blocker(source: i32, target: i32) -> Option<String> {
    if major_key(target) >= major_key(source) {
        return None;
    }
    Some(format!(
        "the target runs PostgreSQL {} and the source PostgreSQL {}: moving into an older major is unsupported (pg_restore refuses a newer pg_dump's archive, logical replication into an older major is unsupported, and catalogs and types differ)",
        major_label(target),
        major_label(source)
    ))
}

/// What change capture (copy-cdc) asks of a source of `source` (`server_version_num`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CopyCdcOptions {
    /// Whether pgoutput can serve the source at all (10+); when false, the rest is moot.
    pub pgoutput: bool,
    /// The pgoutput protocol version asked for: 2 with streaming, else 1.
    pub proto_version: u32,
    /// Whether large in-progress transactions are streamed before they commit (14+).
    pub streaming: bool,
    /// Whether the source takes a partitioned table in a publication (13+); before, only
    /// its leaves can be published.
    pub partitioned_in_publication: bool,
    /// Whether `publish_via_partition_root` exists on the source (13+). pgmove leaves it off:
    /// changes arrive under the leaves' names and are applied into the target's leaves.
    pub publish_via_partition_root_available: bool,
}

/// The copy-cdc options for a source of `source` (`server_version_num`).
pub fn copy_cdc_options(source: i32) -> CopyCdcOptions {
    let pgoutput = source >= PGOUTPUT_MIN;
    let streaming = source >= STREAMING_MIN;
    CopyCdcOptions {
        pgoutput,
        proto_version: if streaming { 2 } else { 1 },
        streaming,
        partitioned_in_publication: source >= PARTITION_ROOT_MIN,
        publish_via_partition_root_available: source >= PARTITION_ROOT_MIN,
    }
}

/// Why copy-cdc cannot serve a source of `source`, or `None`.
pub fn copy_cdc_blocker(source: i32) -> Option<String> {
    if copy_cdc_options(source).pgoutput {
        return None;
    }
    Some(format!(
        "the source is PostgreSQL {}: pgoutput (copy-cdc's change capture) needs PostgreSQL 10 or newer",
        major_label(source)
    ))
}

/// How copy-cdc publishes a partitioned table on a source of `source`: through its root
/// (13+; `publish_via_partition_root` stays off, so changes arrive under the leaves' names) or,
/// before 13 (a publication refuses a partitioned table there), leaf by leaf: every leaf
/// partition is a member of the publication and the partitioned parents are not. Either way
/// the changes of a leaf are applied into the same leaf on the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionPublishing {
    /// The root is the member; its leaves (present and future) are published with it.
    ThroughRoot,
    /// Each leaf is a member; a leaf created during change capture is added by the DDL
    /// trigger in its creating transaction (see `crate::cdc::ddl`).
    LeavesIndividually,
}

/// How partitioned tables are published on a source of `source` (`server_version_num`).
pub fn partition_publishing(source: i32) -> PartitionPublishing {
    if copy_cdc_options(source).partitioned_in_publication {
        PartitionPublishing::ThroughRoot
    } else {
        PartitionPublishing::LeavesIndividually
    }
}

/// What the plan says about copy-cdc's partitioned tables `roots` on a source of `source`
/// when their leaves are published one by one (before PostgreSQL 13), or `None` (13+, or no
/// partitioned table).
pub fn leaves_published_note(source: i32, roots: &[String]) -> Option<String> {
    if roots.is_empty() || partition_publishing(source) == PartitionPublishing::ThroughRoot {
        return None;
    }
    Some(format!(
        "the source is PostgreSQL {} and the plan has {} partitioned table(s): {}; a publication takes a partitioned table only from PostgreSQL 13, so copy-cdc publishes their leaf partitions individually (the parents are not members) and applies each leaf's changes into the same leaf on the target; a leaf created during change capture joins the publication in its creating transaction (cdc.ddl replicate or refuse)",
        major_label(source),
        roots.len(),
        roots.join(", ")
    ))
}

/// What the plan report says about one pair: the majors and what copy-cdc gets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PairReport {
    pub source_major: String,
    pub target_major: String,
    /// Why the pair cannot move at all, if so.
    pub blocker: Option<String>,
    pub copy_cdc: CopyCdcOptions,
    /// `copy_cdc` in a sentence.
    pub copy_cdc_summary: String,
}

/// The report of the pair (`server_version_num` of each side).
pub fn pair_report(source: i32, target: i32) -> PairReport {
    let o = copy_cdc_options(source);
    let summary = if !o.pgoutput {
        copy_cdc_blocker(source).unwrap_or_default()
    } else {
        format!(
            "pgoutput protocol version {}, {}, {}{}",
            o.proto_version,
            if o.streaming {
                "large in-progress transactions streamed before they commit"
            } else {
                "no streaming of in-progress transactions (it needs a PostgreSQL 14 source): each transaction arrives after its commit"
            },
            if o.partitioned_in_publication {
                "partitioned tables published through their roots (publish_via_partition_root off: changes applied into the leaves)"
            } else {
                "partitioned tables' leaves published individually (a publication takes a partitioned table from PostgreSQL 13): changes applied into the target's leaves"
            },
            if logical_messages(source) {
                ""
            } else {
                ", DDL during change capture not streamed (logical decoding messages need a PostgreSQL 14 source: run it on the target too)"
            }
        )
    };
    PairReport {
        source_major: major_label(source),
        target_major: major_label(target),
        blocker: pair_blocker(source, target),
        copy_cdc: o,
        copy_cdc_summary: summary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One `server_version_num` per major pgmove knows of, 9.4 to 18.
    const MAJORS: &[(i32, &str)] = &[
        (90_426, "9.4"),
        (90_524, "9.5"),
        (90_624, "9.6"),
        (100_023, "10"),
        (110_022, "11"),
        (120_022, "12"),
        (130_018, "13"),
        (140_015, "14"),
        (150_010, "15"),
        (160_006, "16"),
        (170_002, "17"),
        (180_000, "18"),
    ];

    #[test]
    fn every_major_gets_its_copy_cdc_options() {
        for &(v, label) in MAJORS {
            assert_eq!(major_label(v), label);
            let o = copy_cdc_options(v);
            let n = major_key(v);
            assert_eq!(o.pgoutput, n >= 1000, "{label}");
            assert_eq!(o.streaming, n >= 1400, "{label}");
            assert_eq!(o.proto_version, if n >= 1400 { 2 } else { 1 }, "{label}");
            assert_eq!(o.partitioned_in_publication, n >= 1300, "{label}");
            assert_eq!(o.publish_via_partition_root_available, n >= 1300, "{label}");
            let blocker = copy_cdc_blocker(v);
            assert_eq!(blocker.is_none(), n >= 1000, "{label}");
            if let Some(b) = blocker {
                assert!(b.contains(&format!("PostgreSQL {label}:")), "{b}");
                assert!(b.contains("needs PostgreSQL 10"), "{b}");
            }
        }
        assert!(pair_report(130_018, 150_010)
            .copy_cdc_summary
            .contains("protocol version 1, no streaming"));
        assert!(pair_report(140_015, 150_010)
            .copy_cdc_summary
            .contains("protocol version 2, large in-progress"));
        assert!(pair_report(120_022, 150_010)
            .copy_cdc_summary
            .contains("leaves published individually"));
        assert!(pair_report(90_624, 150_010)
            .copy_cdc_summary
            .contains("needs PostgreSQL 10"));
    }

    #[test]
    fn leaves_are_published_individually_before_13_only() {
        let roots = vec!["public.events".to_string()];
        for &(v, label) in MAJORS {
            let before_13 = major_key(v) < 1300;
            assert_eq!(
                partition_publishing(v),
                if before_13 {
                    PartitionPublishing::LeavesIndividually
                } else {
                    PartitionPublishing::ThroughRoot
                },
                "{label}"
            );
            let note = leaves_published_note(v, &roots);
            assert_eq!(note.is_some(), before_13, "{label}");
            if let Some(n) = note {
                assert!(
                    n.contains(&format!(
                        "PostgreSQL {label} and the plan has 1 partitioned table(s): public.events"
                    )),
                    "{n}"
                );
                assert!(n.contains("leaf partitions individually"), "{n}");
            }
            assert_eq!(leaves_published_note(v, &[]), None, "{label}");
        }
        assert!(pair_report(120_022, 150_010)
            .copy_cdc_summary
            .contains("leaves published individually"));
        assert!(pair_report(130_018, 150_010)
            .copy_cdc_summary
            .contains("published through their roots"));
        // DDL messages: 14+ only.
        for (v, streamed) in [
            (100_023, false),
            (130_018, false),
            (140_015, true),
            (180_000, true),
        ] {
            assert_eq!(logical_messages(v), streamed, "{v}");
            assert_eq!(
                !pair_report(v, 180_000)
                    .copy_cdc_summary
                    .contains("DDL during change capture not streamed"),
                streamed,
                "{v}"
            );
        }
    }

    #[test]
    fn a_target_older_than_the_source_is_refused_on_every_pair() {
        for &(s, sl) in MAJORS {
            for &(t, tl) in MAJORS {
                let b = pair_blocker(s, t);
                let older =
                    MAJORS.iter().position(|m| m.0 == t) < MAJORS.iter().position(|m| m.0 == s);
                assert_eq!(b.is_some(), older, "{sl} into {tl}");
                if let Some(b) = b {
                    assert!(
                        b.contains(&format!(
                            "target runs PostgreSQL {tl} and the source PostgreSQL {sl}:"
                        )),
                        "{b}"
                    );
                }
            }
        }
        // Minor versions never matter.
        assert_eq!(pair_blocker(150_010, 150_002), None);
        assert_eq!(pair_blocker(90_624, 90_601), None);
        assert!(pair_blocker(90_624, 90_524).is_some());
    }
}
