//! Restore items grouped into batches: each batch is one `pg_restore -L | psql
//! --single-transaction`, and pg_restore reads the dump's whole TOC every time, so one process
//! pair per small table would cost O(tables) each, O(tables²) in all. Small items share a
//! batch; a large one keeps its own (and its own worker, in parallel with the others). The same
//! holds for post-data: the indexes of small tables share batches, and the waves restored one
//! transaction at a time (foreign keys, triggers, comments...) go in runs of consecutive items.

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

/// The Indexes wave's items (indexes, primary/unique constraints) as batches: each item whose
/// table holds `small` bytes or more (or whose table `table_bytes` does not know) alone,
/// largest table first so the longest builds start first; the items of smaller tables after
/// them, in batches of at most `max` (an index build on a small table takes milliseconds, less
/// than starting pg_restore and psql for it).
pub(super) fn index_batches(
    mut items: Vec<&Entry>,
    table_bytes: impl Fn(&Entry) -> Option<i64>,
    small: i64,
    max: usize,
) -> Vec<Vec<&Entry>> {
    let size = |e: &Entry| table_bytes(e).map_or(u64::MAX, |b| b.max(0) as u64);
    // Stable: the items of one table, and the small tables, stay in listing order.
    items.sort_by_key(|e| std::cmp::Reverse(size(e)));
    batches(items, size, small.max(0) as u64, max)
}

/// `items` in their order, in runs of at most `max`: the post-data waves that run one
/// transaction at a time (attachments, foreign keys, the rest) keep their order.
pub(super) fn in_order(items: Vec<&Entry>, max: usize) -> Vec<Vec<&Entry>> {
    items.chunks(max.max(1)).map(<[&Entry]>::to_vec).collect()
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

    #[test]
    fn indexes_of_large_or_unknown_tables_go_first_and_alone_the_small_ones_share() {
        let all: Vec<Entry> = (1..=7).map(entry).collect();
        // 2 is on a large table, 5 on a larger one, 7 on a table the source does not list.
        let bytes = |e: &Entry| match e.dump_id {
            2 => Some(50_000),
            5 => Some(90_000),
            7 => None,
            _ => Some(10),
        };
        let got: Vec<Vec<i32>> = index_batches(all.iter().collect(), bytes, 1000, 3)
            .into_iter()
            .map(|b| b.iter().map(|e| e.dump_id).collect())
            .collect();
        assert_eq!(got, vec![vec![7], vec![5], vec![2], vec![1, 3, 4], vec![6]]);
    }

    #[test]
    fn in_order_keeps_the_listing_order_in_runs_of_at_most_max() {
        let all: Vec<Entry> = (1..=5).map(entry).collect();
        let got: Vec<Vec<i32>> = in_order(all.iter().collect(), 2)
            .into_iter()
            .map(|b| b.iter().map(|e| e.dump_id).collect())
            .collect();
        assert_eq!(got, vec![vec![1, 2], vec![3, 4], vec![5]]);
        assert!(in_order(Vec::new(), 2).is_empty());
    }
}
