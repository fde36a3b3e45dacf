//! A list of named steps, as strategies ([`crate::strategy::steps`]) and cutover
//! ([`crate::cutover::steps`]) describe what they do: the type, and the dry run's heading of a
//! step, which tests and scripts read back by name.

/// A step's name and what it does in a few words: the dry run's heading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// Recorded in `pgmove.steps` when the step finishes: never rename one (users' targets
    /// hold the names).
    pub name: &'static str,
    pub summary: &'static str,
}

/// The dry run's heading of step `i` (from 0) of `steps`: `-- step 2/7 dump: <summary>`.
pub fn heading(steps: &[Step], i: usize) -> String {
    let s = steps[i];
    format!(
        "-- step {}/{} {}: {}",
        i + 1,
        steps.len(),
        s.name,
        s.summary
    )
}

/// The step name of a dry-run line written by [`heading`], if it is one.
pub fn heading_name(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("-- step ")?;
    let (number, rest) = rest.split_once(' ')?;
    let (n, total) = number.split_once('/')?;
    if n.parse::<usize>().is_err() || total.parse::<usize>().is_err() {
        return None;
    }
    rest.split_once(": ").map(|(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_carry_the_step_name_and_are_read_back() {
        let steps = crate::strategy::steps::of(crate::planner::Strategy::DumpRestore);
        let h = heading(steps, 1);
        assert_eq!(
            h,
            format!("-- step 2/{} dump: {}", steps.len(), steps[1].summary)
        );
        assert_eq!(heading_name(&h), Some("dump"));
        assert_eq!(heading_name("-- step dump directory x: y"), None);
        assert_eq!(heading_name("-- 2. dump the source"), None);
    }
}
