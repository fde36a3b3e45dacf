//! Fixtures for strategy pglogical's tests: a source and a target cluster of their own
//! (`Options::pglogical()`: pglogical preloaded, which makes `DROP DATABASE` hang on
//! PostgreSQL 15, so never drop a database there and never share these clusters), database
//! [`DB`] on both, and a plan with `strategy: pglogical`; then reads of pglogical's catalogs.

use std::path::PathBuf;
use std::process::Output;

use super::online::{self, PlanYaml, DB};
use super::{Cluster, Options};

/// Two pglogical clusters, database [`DB`] on each, and a plan between them.
pub struct Pair {
    pub src: Cluster,
    pub dst: Cluster,
    pub dir: tempfile::TempDir,
    pub plan: PathBuf,
    pub name: String,
}

impl Pair {
    /// Starts both clusters, creates [`DB`] on each, runs `schema` (SQL) on the source, and
    /// writes plan `name` (strategy pglogical, `jobs: 2`) with the YAML in `extra`.
    pub fn start(name: &str, schema: &str, extra: &str) -> Pair {
        let src = Cluster::start(Options::pglogical());
        let dst = Cluster::start(Options::pglogical());
        src.create_db(DB);
        dst.create_db(DB);
        if !schema.is_empty() {
            src.psql(DB, schema);
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let plan = PlanYaml {
            strategy: Some("pglogical"),
            extra,
            ..PlanYaml::default()
        }
        .write(dir.path(), name, &src, &dst);
        Pair {
            src,
            dst,
            dir,
            plan,
            name: name.to_string(),
        }
    }

    /// Runs `pgmove <args> <plan> <more>` to its end.
    pub fn run(&self, command: &str, more: &[&str]) -> Output {
        let plan = self.plan.to_str().expect("utf8");
        let mut args = vec![command, plan];
        args.extend_from_slice(more);
        online::run(&args, &self.src, &self.dst)
    }

    /// `pgmove apply <plan> --yes`, asserted to succeed; its output.
    pub fn apply(&self) -> Output {
        let out = self.run("apply", &["--yes"]);
        online::assert_ok(&out);
        out
    }
}

/// The replication sets on `c` (database [`DB`]): `name|insert|update|delete|truncate` lines
/// (`true`/`false`), by name, pglogical's own sets left out.
pub fn sets(c: &Cluster) -> Vec<String> {
    lines(
        c,
        "SELECT set_name || '|' || replicate_insert || '|' || replicate_update || '|' || replicate_delete || '|' || replicate_truncate
           FROM pglogical.replication_set
          WHERE set_name NOT IN ('default', 'default_insert_only', 'ddl_sql') ORDER BY 1",
    )
}

/// The tables and sequences in each set on `c`: `set|schema.relation` lines, sorted.
pub fn members(c: &Cluster) -> Vec<String> {
    lines(
        c,
        "SELECT s.set_name || '|' || t.set_reloid::regclass::text FROM pglogical.replication_set_table t
           JOIN pglogical.replication_set s USING (set_id)
         UNION ALL
         SELECT s.set_name || '|' || q.set_seqoid::regclass::text FROM pglogical.replication_set_seq q
           JOIN pglogical.replication_set s USING (set_id)
         ORDER BY 1",
    )
}

/// The node names on `c`.
pub fn nodes(c: &Cluster) -> Vec<String> {
    lines(c, "SELECT node_name FROM pglogical.node ORDER BY 1")
}

/// The subscriptions on `c`: `name|status` lines.
pub fn subscriptions(c: &Cluster) -> Vec<String> {
    lines(
        c,
        "SELECT subscription_name || '|' || status FROM pglogical.show_subscription_status() ORDER BY 1",
    )
}

/// The query's lines on `c`'s [`DB`] (none for empty output).
pub fn lines(c: &Cluster, sql: &str) -> Vec<String> {
    c.psql(DB, sql)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Waits (up to a minute) until `sql` on `c` returns `want`.
pub fn wait_for(c: &Cluster, sql: &str, want: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let got = c.psql(DB, sql);
        if got == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "waited a minute for {sql:?} to return {want:?}; it returns {got:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
