//! pgmove's integration tests: one test binary, so the library is linked and `support` is
//! compiled once, and every test runs in one pool of test threads.
//!
//! To add tests, add `tests/it/<topic>.rs` with `use crate::support;` at the top and declare it
//! below (`mod <topic>;`, in alphabetical order). Run one module with
//! `cargo test --test it <topic>::`.
//!
//! Servers: a test that only needs a server of one of the [`support::Profile`]s uses the
//! cluster this process shares for it, `support::shared(Profile::Plain)`, in a database of its
//! own (`fresh_db`) and with roles, slots and plan names no other test uses. A test that needs
//! other settings, stops, restarts or kills the server, changes its files or configuration,
//! needs a cluster-wide state of its own (roles, slots, pglogical in shared_preload_libraries,
//! whose databases cannot be dropped) starts its own with `Cluster::start(Options...)`.
//! Tests run in parallel in this one process: a test that needs an environment variable set
//! in-process runs in a child process (`support::run_in_child`), never `std::env::set_var`;
//! temporary files go to `tempfile` directories, never fixed paths.

// The test binary sees every dependency of the package and uses few of them directly: the
// check for unused dependencies is the library's (Cargo.toml `[lints]`).
#![allow(unused_crate_dependencies)]

mod cdc_apply;
mod cdc_apply_batch;
mod cdc_ddl;
mod cdc_ddl_apply;
mod cdc_decode;
mod cdc_enum;
mod cdc_memory;
mod cdc_retry;
mod cdc_slot;
mod cdc_slot_lost;
mod cdc_streaming;
mod cleanup;
mod cli_docs;
mod connect;
mod copy_cdc;
mod copy_cdc_resume;
mod cutover;
mod cutover_dry_run;
mod cutover_fence;
mod dump_dir;
mod dump_restore;
mod examples_plan;
mod ext_config;
mod fidelity;
mod harness;
mod help;
mod init;
mod inspect;
mod json_output;
mod least_privilege;
mod managed_ddl;
mod managed_e2e;
mod managed_harness;
mod managed_import;
mod managed_pglogical;
mod managed_preflight;
mod managed_replica;
mod managed_roles;
mod owned_names;
mod pglogical_apply;
mod pglogical_cleanup;
mod pglogical_cutover;
mod pglogical_ddl;
mod pglogical_move;
mod pglogical_preflight;
mod pglogical_status;
mod plan_command;
mod plan_load;
mod privileges;
mod progress_tty;
mod replica_identity;
mod report;
mod roles;
mod scale;
mod session_values;
mod state_upgrade;
mod status_exit;
mod status_rates;
mod steps;
mod support;
mod unlogged;
mod verify;
mod verify_catalogue;
mod version_values;
mod versions;
