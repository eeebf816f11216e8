//! The order of a restore's work (pure): chunk loads, and for each table whose indexes were
//! deferred, the index build once all its chunks are in.
//!
//! Loads go to the table with the most bytes still to hand out, so the big tables start first and
//! the end of the restore is many small pieces spread over every worker. Within a table, chunks
//! go in key order: InnoDB then appends to its clustered index instead of splitting pages in the
//! middle (loading a table's chunks largest-first put its open-ended last chunk first). A table
//! takes at most
//! `max_parallel` loads at a time: where the server serializes loads of one table (a table-level
//! AUTO-INC lock or bulk-insert table lock), a second worker on it would only wait, while it could
//! load another table.

use std::collections::VecDeque;

/// What the restore knows about one table when it plans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TablePlan {
    /// Uncompressed size of every chunk, in manifest order.
    pub(crate) chunk_bytes: Vec<u64>,
    /// Loads of this table that may run at the same time (at least 1).
    pub(crate) max_parallel: usize,
    /// Whether an index build follows the last load.
    pub(crate) deferred_indexes: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Job {
    Load { table: usize, chunk: usize },
    BuildIndexes { table: usize },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    Run(Job),
    /// Nothing can start until a running job finishes.
    Wait,
    /// All work is handed out and finished, or handed out to others.
    Done,
}

#[derive(Debug)]
struct Table {
    /// Chunks not handed out yet, in key (manifest) order.
    pending: VecDeque<(usize, u64)>,
    pending_bytes: u64,
    running: usize,
    max_parallel: usize,
    /// Chunks not finished yet.
    unfinished: usize,
    indexes: Indexes,
}

#[derive(Debug, PartialEq, Eq)]
enum Indexes {
    None,
    AfterLoad,
    Started,
}

#[derive(Debug)]
pub(crate) struct Schedule {
    tables: Vec<Table>,
    ready: VecDeque<usize>,
    running: usize,
}

impl Schedule {
    pub(crate) fn new(plans: &[TablePlan]) -> Schedule {
        let mut s = Schedule {
            tables: Vec::with_capacity(plans.len()),
            ready: VecDeque::new(),
            running: 0,
        };
        for (t, p) in plans.iter().enumerate() {
            s.tables.push(Table {
                pending_bytes: p.chunk_bytes.iter().sum(),
                pending: p.chunk_bytes.iter().copied().enumerate().collect(),
                running: 0,
                max_parallel: p.max_parallel.max(1),
                unfinished: p.chunk_bytes.len(),
                indexes: if p.deferred_indexes {
                    Indexes::AfterLoad
                } else {
                    Indexes::None
                },
            });
            s.index_ready_check(t);
        }
        s
    }

    /// The next job to run. Index builds go first: they are the only work of a table that is
    /// loaded, and starting them early keeps them off the end of the restore.
    pub(crate) fn next_job(&mut self) -> Next {
        if let Some(table) = self.ready.pop_front() {
            self.running += 1;
            return Next::Run(Job::BuildIndexes { table });
        }
        let pick = self
            .tables
            .iter()
            .enumerate()
            .filter(|(_, t)| !t.pending.is_empty() && t.running < t.max_parallel)
            .max_by_key(|&(i, t)| (t.pending_bytes, std::cmp::Reverse(i)))
            .map(|(i, _)| i);
        match pick {
            Some(table) => {
                let t = &mut self.tables[table];
                let (chunk, bytes) = t.pending.pop_front().expect("picked tables have chunks");
                t.pending_bytes -= bytes;
                t.running += 1;
                self.running += 1;
                Next::Run(Job::Load { table, chunk })
            }
            None if self.running > 0 => Next::Wait,
            None => Next::Done,
        }
    }

    /// Records that `job` (handed out by [`Schedule::next_job`]) finished successfully.
    pub(crate) fn finished(&mut self, job: Job) {
        self.running -= 1;
        if let Job::Load { table, .. } = job {
            let t = &mut self.tables[table];
            t.running -= 1;
            t.unfinished -= 1;
            self.index_ready_check(table);
        }
    }

    fn index_ready_check(&mut self, table: usize) {
        let t = &mut self.tables[table];
        if t.unfinished == 0 && t.indexes == Indexes::AfterLoad {
            t.indexes = Indexes::Started;
            self.ready.push_back(table);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn plan(chunks: &[u64], max_parallel: usize, deferred: bool) -> TablePlan {
        TablePlan {
            chunk_bytes: chunks.to_vec(),
            max_parallel,
            deferred_indexes: deferred,
        }
    }

    fn run(s: &mut Schedule) -> Job {
        match s.next_job() {
            Next::Run(j) => j,
            other => panic!("expected a job, got {other:?}"),
        }
    }

    #[test]
    fn biggest_table_first_chunks_in_key_order_and_indexes_after_the_last_chunk() {
        let mut s = Schedule::new(&[plan(&[10, 30], 1, true), plan(&[50], 4, false)]);
        assert_eq!(run(&mut s), Job::Load { table: 1, chunk: 0 });
        assert_eq!(run(&mut s), Job::Load { table: 0, chunk: 0 });
        // table 0 is at its limit, table 1 has nothing left
        assert_eq!(s.next_job(), Next::Wait);
        s.finished(Job::Load { table: 0, chunk: 0 });
        assert_eq!(run(&mut s), Job::Load { table: 0, chunk: 1 });
        s.finished(Job::Load { table: 0, chunk: 1 });
        assert_eq!(run(&mut s), Job::BuildIndexes { table: 0 });
        assert_eq!(s.next_job(), Next::Wait);
        s.finished(Job::BuildIndexes { table: 0 });
        s.finished(Job::Load { table: 1, chunk: 0 });
        assert_eq!(s.next_job(), Next::Done);
    }

    #[test]
    fn a_table_without_chunks_builds_its_indexes_at_once() {
        let mut s = Schedule::new(&[plan(&[], 1, true)]);
        assert_eq!(run(&mut s), Job::BuildIndexes { table: 0 });
        s.finished(Job::BuildIndexes { table: 0 });
        assert_eq!(s.next_job(), Next::Done);
    }

    proptest! {
        /// Any completion order: every chunk loads once, no table exceeds its parallelism, every
        /// deferred index build comes once and only after all of its table's chunks.
        #[test]
        fn every_job_once_within_limits(
            tables in proptest::collection::vec(
                (proptest::collection::vec(0u64..100, 0..6), 1usize..4, any::<bool>()), 1..6),
            workers in 1usize..6,
            picks in proptest::collection::vec(any::<usize>(), 64),
        ) {
            let plans: Vec<TablePlan> =
                tables.iter().map(|(c, p, d)| plan(c, *p, *d)).collect();
            let mut s = Schedule::new(&plans);
            let mut running: Vec<Job> = Vec::new();
            let mut loaded = vec![0usize; plans.len()];
            let mut built = vec![0usize; plans.len()];
            let mut seen = std::collections::HashSet::new();
            let mut pick = picks.iter().cycle();
            loop {
                while running.len() < workers {
                    match s.next_job() {
                        Next::Run(j) => {
                            prop_assert!(seen.insert(j), "{j:?} twice");
                            match j {
                                Job::Load { table, .. } => {
                                    let same = running.iter().filter(|r| matches!(r, Job::Load { table: t, .. } if *t == table)).count();
                                    prop_assert!(same < plans[table].max_parallel);
                                }
                                Job::BuildIndexes { table } => {
                                    prop_assert!(plans[table].deferred_indexes);
                                    prop_assert_eq!(loaded[table], plans[table].chunk_bytes.len());
                                }
                            }
                            running.push(j);
                        }
                        Next::Wait => { prop_assert!(!running.is_empty()); break }
                        Next::Done => break,
                    }
                }
                if running.is_empty() {
                    break;
                }
                let j = running.swap_remove(pick.next().unwrap() % running.len());
                match j {
                    Job::Load { table, .. } => loaded[table] += 1,
                    Job::BuildIndexes { table } => built[table] += 1,
                }
                s.finished(j);
            }
            for (t, p) in plans.iter().enumerate() {
                prop_assert_eq!(loaded[t], p.chunk_bytes.len());
                prop_assert_eq!(built[t], usize::from(p.deferred_indexes));
            }
        }
    }
}
