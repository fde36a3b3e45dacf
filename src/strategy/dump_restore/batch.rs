//! Restore items grouped into batches: each batch is one `pg_restore -L | psql
//! --single-transaction`, and pg_restore reads the dump's whole TOC every time, so one process
//! pair per small table would cost O(tables) each, O(tables²) in all. Small items share a
//! batch; a large one keeps its own (and its own worker, in parallel with the others).

use super::toc::Entry;

/// Data items whose dump file (compressed) is below this many bytes are restored in batches.
pub(super) const SMALL_ITEM_BYTES: u64 = 1024 * 1024;

/// At most this many items in one batch: one transaction, whose locks (at least one per
/// table) must fit the server's lock table (by default 64 per connection, shared).
pub(super) const BATCH_ITEMS: usize = 100;

/// `items` (in the order given) as batches: each item of `size` at least `small` alone, the
/// others in runs of consecutive small items of at most `max`.
pub(super) fn batches(
    items: Vec<&Entry>,
    size: impl Fn(&Entry) -> u64,
    small: u64,
    max: usize,
) -> Vec<Vec<&Entry>> {
    let mut out: Vec<Vec<&Entry>> = Vec::new();
    let mut run: Vec<&Entry> = Vec::new();
    for e in items {
        if size(e) >= small {
            out.push(vec![e]);
            continue;
        }
        run.push(e);
        if run.len() >= max.max(1) {
            out.push(std::mem::take(&mut run));
        }
    }
    if !run.is_empty() {
        out.push(run);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: i32) -> Entry {
        Entry {
            dump_id: id,
            kind: "TABLE DATA".into(),
            schema: "public".into(),
            tag: format!("t_{id}"),
            owner: "postgres".into(),
            line: String::new(),
        }
    }

    #[test]
    fn large_items_stay_alone_and_small_ones_share_batches_of_at_most_max() {
        let all: Vec<Entry> = (1..=8).map(entry).collect();
        // Items 1 and 2 are large (largest first, as the data step sorts them).
        let size = |e: &Entry| if e.dump_id <= 2 { 10_000 } else { 10 };
        let got: Vec<Vec<i32>> = batches(all.iter().collect(), size, 1000, 4)
            .into_iter()
            .map(|b| b.iter().map(|e| e.dump_id).collect())
            .collect();
        assert_eq!(got, vec![vec![1], vec![2], vec![3, 4, 5, 6], vec![7, 8]]);
    }

    #[test]
    fn every_item_is_in_exactly_one_batch() {
        let all: Vec<Entry> = (1..=250).map(entry).collect();
        let size = |e: &Entry| if e.dump_id % 50 == 0 { 5_000 } else { 1 };
        let got = batches(all.iter().collect(), size, 1000, BATCH_ITEMS);
        let mut ids: Vec<i32> = got.iter().flatten().map(|e| e.dump_id).collect();
        ids.sort();
        assert_eq!(ids, (1..=250).collect::<Vec<_>>());
        assert!(got.iter().all(|b| b.len() <= BATCH_ITEMS));
        assert_eq!(got.iter().filter(|b| b.len() == 1).count(), 5);
    }
}
