//! Break-even batches (1000 burns of `W` ns to 2 workers, back to back)
//! under one pool setting, with the speed-up over doing the work inline and
//! where the CPU went: the figures behind the closing notes' "tried, and
//! not kept" rows about the window and the workers' idle policy.
//!
//! ```text
//! cargo run --release -p perf --example break_even_settings -- W SETTING
//! ```
//!
//! `W` in ns (default 1000); `SETTING` one of `default`, `ring=N`
//! (`ring_capacity(N)`), `poll` (`Idle::Poll`), `park` (`Idle::Park`),
//! `park-spin=US` (`Idle::Park` after a `worker_spin` of US µs).

#[path = "../../benches/common/mod.rs"]
mod common;

use common::cpu::cpu_split;
use common::echo::{burn_batch, echo_pool_with};
use common::work::{burn, rounds_for};
use shardpool::Idle;
use std::hint::black_box;
use std::time::{Duration, Instant};

const MESSAGES: u64 = 1000;

fn main() {
    let mut args = std::env::args().skip(1);
    let w: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let setting = args.next().unwrap_or_else(|| "default".into());
    let pool = echo_pool_with(2, |b| {
        let b = b.thread_name(|i| format!("settings-{i}"));
        match setting.split_once('=') {
            None if setting == "default" => b,
            None if setting == "poll" => b.idle(Idle::Poll),
            None if setting == "park" => b.idle(Idle::Park),
            Some(("ring", n)) => b.ring_capacity(n.parse().expect("ring=N")),
            Some(("park-spin", us)) => {
                b.idle(Idle::Park).worker_spin(Duration::from_micros(us.parse().expect("park-spin=US")))
            }
            _ => {
                eprintln!("unknown setting {setting:?}: default, ring=N, poll, park, park-spin=US");
                std::process::exit(2);
            }
        }
    });
    let rounds = rounds_for(w);
    let inline = {
        let runs = 200;
        let t = Instant::now();
        for _ in 0..runs {
            black_box((0..MESSAGES).fold(0u64, |a, _| a ^ burn(black_box(rounds))));
        }
        t.elapsed().as_nanos() as f64 / (runs * MESSAGES) as f64
    };
    let split = cpu_split("settings-", Duration::from_secs(1), || {
        black_box(burn_batch(&pool, MESSAGES, rounds));
    })
    .per(MESSAGES as f64);
    let workers = split.workers_total();
    println!(
        "W={w} ns {setting}: inline {inline:.0} ns, pool {:.1} ns per message ({:.3}x); CPU per message: \
         caller {:.1} ns, workers {workers:.1} ns, beyond the work {:.1} ns",
        split.wall,
        inline / split.wall,
        split.caller,
        split.caller + workers - inline
    );
}
