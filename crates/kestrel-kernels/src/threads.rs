//! A small fork-join pool for the kernels.
//!
//! Inference calls the pool once per layer, often for well under a millisecond of work, so the
//! cost that matters is waking the workers. Workers spin briefly on an atomic after each job
//! (the next layer usually follows within microseconds) and only then sleep on a condvar; the
//! calling thread always takes tasks itself. One job runs at a time: a second caller waits.
//!
//! Safety of the job pointer: a task is claimed by a compare-exchange on a word that holds the
//! job's generation, its task count and the next task index together, so a worker can only run a
//! task of the job whose generation it read, and the caller returns only after every claimed
//! task has finished.

use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

type Job<'a> = dyn Fn(usize) + Sync + 'a;

const GEN_BITS: u32 = 24;
const COUNT_BITS: u32 = 20;
const MAX_TASKS: usize = (1 << COUNT_BITS) - 1;

fn pack(gen: u64, count: u64, next: u64) -> u64 {
    (gen << (2 * COUNT_BITS)) | (count << COUNT_BITS) | next
}
fn unpack(s: u64) -> (u64, u64, u64) {
    let mask = (1u64 << COUNT_BITS) - 1;
    (s >> (2 * COUNT_BITS), (s >> COUNT_BITS) & mask, s & mask)
}

struct Shared {
    state: AtomicU64,
    /// `*const Job` as a fat pointer split in two words is awkward; store a thin pointer to a
    /// `&Job` that lives on the caller's stack for the duration of the job.
    job: AtomicPtr<&'static Job<'static>>,
    done: AtomicUsize,
    sleepers: Mutex<usize>,
    wake: Condvar,
}

pub struct Pool {
    shared: Arc<Shared>,
    threads: usize,
    caller: Mutex<()>,
}

static REQUESTED: AtomicUsize = AtomicUsize::new(0);
static POOL: OnceLock<Pool> = OnceLock::new();

/// Sets the number of compute threads (the caller included). Takes effect if called before the
/// first kernel runs; returns false when the pool already exists with another size.
pub fn set_num_threads(n: usize) -> bool {
    REQUESTED.store(n.max(1), Ordering::SeqCst);
    match POOL.get() {
        Some(p) => p.threads == n.max(1),
        None => true,
    }
}

/// Compute threads in use (or that will be used): `set_num_threads`, else `KESTREL_THREADS`,
/// else the cores available to this process.
pub fn num_threads() -> usize {
    match POOL.get() {
        Some(p) => p.threads,
        None => requested_threads(),
    }
}

fn requested_threads() -> usize {
    let n = REQUESTED.load(Ordering::SeqCst);
    if n > 0 {
        return n;
    }
    if let Some(n) = std::env::var("KESTREL_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
    {
        return n;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn pool() -> &'static Pool {
    POOL.get_or_init(|| Pool::new(requested_threads()))
}

thread_local! {
    /// Set while this thread runs a pool task: a kernel called from inside a task (attention's
    /// per-head GEMMs) then runs its own tasks inline instead of waiting for the pool it is on.
    static IN_TASK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Threads a kernel called here can use: 1 inside a pool task (its jobs run inline), else
/// [`num_threads`].
pub fn available() -> usize {
    if IN_TASK.with(|t| t.get()) {
        1
    } else {
        num_threads()
    }
}

/// Runs `f(0) .. f(tasks - 1)` across the pool and returns when all have finished. Called from
/// inside a task, it runs them in order on the calling thread.
pub fn parallel_for(tasks: usize, f: impl Fn(usize) + Sync) {
    if tasks == 0 {
        return;
    }
    let p = pool();
    if tasks == 1 || p.threads == 1 || IN_TASK.with(|t| t.get()) {
        (0..tasks).for_each(f);
        return;
    }
    p.run(tasks, &f);
}

impl Pool {
    fn new(threads: usize) -> Pool {
        let shared = Arc::new(Shared {
            state: AtomicU64::new(pack(0, 0, 0)),
            job: AtomicPtr::new(std::ptr::null_mut()),
            done: AtomicUsize::new(0),
            sleepers: Mutex::new(0),
            wake: Condvar::new(),
        });
        for i in 1..threads {
            let s = shared.clone();
            std::thread::Builder::new()
                .name(format!("kestrel-compute-{i}"))
                .spawn(move || worker(&s))
                .expect("spawning a compute thread");
        }
        Pool {
            shared,
            threads,
            caller: Mutex::new(()),
        }
    }

    fn run(&self, tasks: usize, f: &Job<'_>) {
        if tasks > MAX_TASKS {
            // Chunk oversized jobs rather than overflow the task counter.
            let chunk = tasks.div_ceil(MAX_TASKS);
            let g = |c: usize| (c * chunk..((c + 1) * chunk).min(tasks)).for_each(f);
            return self.run(tasks.div_ceil(chunk), &g);
        }
        let _one_job = self.caller.lock().unwrap_or_else(|e| e.into_inner());
        let s = &*self.shared;
        // SAFETY: the reference is only dereferenced by workers that claim a task of this
        // generation, and we do not return before every claimed task has finished.
        let job_ref: &'static Job<'static> =
            unsafe { std::mem::transmute::<&Job<'_>, &'static Job<'static>>(f) };
        let slot: &&'static Job<'static> = &job_ref;
        s.job.store(
            slot as *const &'static Job<'static> as *mut &'static Job<'static>,
            Ordering::SeqCst,
        );
        s.done.store(0, Ordering::SeqCst);
        let (gen, _, _) = unpack(s.state.load(Ordering::SeqCst));
        let gen = (gen + 1) & ((1 << GEN_BITS) - 1);
        s.state.store(pack(gen, tasks as u64, 0), Ordering::SeqCst);
        {
            let sleepers = s.sleepers.lock().unwrap_or_else(|e| e.into_inner());
            if *sleepers > 0 {
                s.wake.notify_all();
            }
        }
        // The caller works too.
        IN_TASK.with(|t| t.set(true));
        while let Some(i) = claim(s, gen) {
            f(i);
            s.done.fetch_add(1, Ordering::AcqRel);
        }
        IN_TASK.with(|t| t.set(false));
        while s.done.load(Ordering::Acquire) < tasks {
            std::hint::spin_loop();
        }
    }
}

/// Claims the next task of generation `gen`, if any is left.
fn claim(s: &Shared, gen: u64) -> Option<usize> {
    let mut cur = s.state.load(Ordering::Acquire);
    loop {
        let (g, count, next) = unpack(cur);
        if g != gen || next >= count {
            return None;
        }
        match s.state.compare_exchange_weak(
            cur,
            pack(g, count, next + 1),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => return Some(next as usize),
            Err(now) => cur = now,
        }
    }
}

/// How long an idle worker spins before it sleeps: long enough to bridge the gap between two
/// layers, short enough not to steal a core from the data loader for long.
const SPIN: Duration = Duration::from_micros(200);

fn worker(s: &Shared) {
    IN_TASK.with(|t| t.set(true));
    let mut seen_gen = unpack(s.state.load(Ordering::Acquire)).0;
    loop {
        // Wait for a generation with work left.
        let start = Instant::now();
        let mut spins = 0u32;
        let gen = loop {
            let (g, count, next) = unpack(s.state.load(Ordering::Acquire));
            if g != seen_gen && next < count {
                break g;
            }
            if g != seen_gen {
                seen_gen = g; // finished before we saw it
            }
            spins += 1;
            if spins % 64 == 0 && start.elapsed() > SPIN {
                let mut sleepers = s.sleepers.lock().unwrap_or_else(|e| e.into_inner());
                *sleepers += 1;
                loop {
                    let (g2, c2, n2) = unpack(s.state.load(Ordering::Acquire));
                    if g2 != seen_gen && n2 < c2 {
                        break;
                    }
                    let (guard, _) = s
                        .wake
                        .wait_timeout(sleepers, Duration::from_millis(50))
                        .unwrap_or_else(|e| e.into_inner());
                    sleepers = guard;
                }
                *sleepers -= 1;
                spins = 0;
            } else {
                std::hint::spin_loop();
            }
        };
        while let Some(i) = claim(s, gen) {
            // SAFETY: a successful claim means the caller of this generation is still waiting
            // for this task, so the job it published is alive.
            let job: &Job<'_> = unsafe { *s.job.load(Ordering::Acquire) };
            job(i);
            s.done.fetch_add(1, Ordering::AcqRel);
        }
        seen_gen = gen;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_once() {
        for tasks in [1usize, 2, 3, 17, 1000] {
            let hits: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
            for _ in 0..20 {
                parallel_for(tasks, |i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
            }
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 20));
        }
    }

    #[test]
    fn a_job_started_inside_a_task_runs_inline() {
        let hits: Vec<AtomicUsize> = (0..12).map(|_| AtomicUsize::new(0)).collect();
        parallel_for(3, |i| {
            parallel_for(4, |j| {
                hits[i * 4 + j].fetch_add(1, Ordering::Relaxed);
            });
        });
        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
    }
}
