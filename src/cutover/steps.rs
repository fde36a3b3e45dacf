//! Cutover's steps, in order: the one list that `pgmove cutover --dry-run` names (its report's
//! `steps`) and that `pgmove cutover` records in `pgmove.steps`, each when it finishes (see
//! [`crate::step_list`]). A cutover attempt starts by forgetting an earlier attempt's records,
//! so they say how far this attempt got. A step that has nothing to do under the plan's
//! settings (no fence with `fence: none`, no comparison with `verify: none`) is recorded as
//! passed.

use crate::step_list::Step;

/// The step names (stored in `pgmove.steps`; defined with the state store).
pub use crate::state::step::cutover::{
    CATCH_UP, FENCE, LAG, LARGE_OBJECTS, LIVE, SEQUENCES, VERIFY,
};

/// Cutover's steps, in the order it runs them.
pub const STEPS: &[Step] = &[
    Step {
        name: LAG,
        summary: "wait until the replication lag is under cutover.max_lag",
    },
    Step {
        name: FENCE,
        summary:
            "fence the source (read-only, other sessions terminated) with cutover.fence: read-only",
    },
    Step {
        name: CATCH_UP,
        summary: "the target applies every change committed on the source before the fence",
    },
    Step {
        name: SEQUENCES,
        summary: "sequences set from the source (cutover.sequences: sync)",
    },
    Step {
        name: LARGE_OBJECTS,
        summary: "changed large objects copied again, materialized views refreshed",
    },
    Step {
        name: VERIFY,
        summary: "the target compared with the source (cutover.verify)",
    },
    Step {
        name: LIVE,
        summary: "the target is live: pgmove.cutover says done, the run's phase is live",
    },
];

/// The names of [`STEPS`], in order.
pub fn names() -> Vec<&'static str> {
    STEPS.iter().map(|s| s.name).collect()
}
